// Package protocol is the game server's wire protocol, spoken over TCP the
// way a gate speaks to its game servers.
//
// Every message is one frame:
//
//	+----------------+--------+---------------------------+
//	| length uint32  | type   | payload (JSON object)     |
//	| big endian     | uint8  | length-1 bytes            |
//	+----------------+--------+---------------------------+
//
// length counts the type byte and the payload, so it is at least 1 and at most
// the reader's limit (DefaultMaxFrameSize unless configured). A reader checks
// the length before it allocates, so an oversize or garbage header costs
// nothing but an error; the connection is then closed, as the stream can no
// longer be trusted.
//
// A session runs: client Hello → server Welcome (or Error and close); then
// any number of Bet → BetResult, with Ack for every BetResult received,
// Ping → Pong and BalanceRequest → Balance. Results the client missed while
// away are sent right after Welcome, flagged Redelivered, and repeat until
// acknowledged: delivery is at least once, and clients deduplicate by BetID.
package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrameSize bounds a frame's length field. A bet result is ~200
// bytes; 64 KiB leaves room without letting a peer make us allocate much.
const DefaultMaxFrameSize = 64 << 10

const headerSize = 4

// Type identifies a message.
type Type uint8

// Message types. Values are part of the wire format: never renumber.
const (
	TypeHello          Type = 0x01 // client → server: Hello
	TypeWelcome        Type = 0x02 // server → client: Welcome
	TypeBet            Type = 0x03 // client → server: Bet
	TypeBetResult      Type = 0x04 // server → client: BetResult
	TypeAck            Type = 0x05 // client → server: Ack
	TypePing           Type = 0x06 // client → server: Ping
	TypePong           Type = 0x07 // server → client: Pong
	TypeError          Type = 0x08 // server → client: Error
	TypeBalanceRequest Type = 0x09 // client → server: BalanceRequest
	TypeBalance        Type = 0x0A // server → client: Balance
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeBet: "bet", TypeBetResult: "bet_result",
	TypeAck: "ack", TypePing: "ping", TypePong: "pong", TypeError: "error",
	TypeBalanceRequest: "balance_request", TypeBalance: "balance",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Known reports whether t is a defined message type.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// Hello authenticates a connection with a gate-issued ticket.
type Hello struct {
	PlayerID string `json:"player_id"`
	Token    string `json:"token"`
}

// Welcome accepts a Hello.
type Welcome struct {
	PlayerID  string `json:"player_id"`
	SessionID uint64 `json:"session_id"`
	Game      string `json:"game"`
	Balance   int64  `json:"balance"`
}

// Bet asks to buy one scratch card. BetID is chosen by the client and makes
// the bet idempotent: resending a BetID never deducts twice, it returns the
// recorded result.
type Bet struct {
	BetID  string `json:"bet_id"`
	Amount int64  `json:"amount"`
}

// BetResult is a settled bet.
type BetResult struct {
	BetID       string `json:"bet_id"`
	PlayerID    string `json:"player_id"`
	Game        string `json:"game"`
	Amount      int64  `json:"amount"`
	Win         int64  `json:"win"`
	Balance     int64  `json:"balance"` // balance right after this bet settled
	Symbols     []int  `json:"symbols"`
	Redelivered bool   `json:"redelivered,omitempty"`
}

// Ack confirms a BetResult arrived; the server then forgets it.
type Ack struct {
	BetID string `json:"bet_id"`
}

// Ping and Pong keep a session's health current.
type Ping struct{}

// Pong answers Ping.
type Pong struct{}

// BalanceRequest asks for the ledger balance.
type BalanceRequest struct{}

// Balance is the ledger balance, after every bet the server has received from
// this player has settled.
type Balance struct {
	Balance int64 `json:"balance"`
}

// Error codes. Codes marked fatal are followed by the server closing the
// connection.
const (
	CodeBadFrame          = "bad_frame"       // fatal
	CodeFrameTooLarge     = "frame_too_large" // fatal
	CodeUnauthenticated   = "unauthenticated" // fatal: first frame was not Hello
	CodeBadToken          = "bad_token"       // fatal
	CodeTokenExpired      = "token_expired"   // fatal
	CodeBadRequest        = "bad_request"
	CodeInsufficientFunds = "insufficient_funds"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
)

// Error reports a failed request. BetID is set when it concerns one bet.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	BetID   string `json:"bet_id,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errors returned by ReadFrame.
var (
	ErrFrameTooLarge = errors.New("protocol: frame exceeds maximum size")
	ErrEmptyFrame    = errors.New("protocol: frame has no type byte")
	ErrUnknownType   = errors.New("protocol: unknown message type")
)

// Frame is one decoded frame.
type Frame struct {
	Type    Type
	Payload []byte
}

// ReadFrame reads one frame, refusing lengths above max (≤0 means
// DefaultMaxFrameSize) before allocating. io.EOF means the peer closed
// cleanly between frames; io.ErrUnexpectedEOF means it closed mid-frame.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return Frame{}, ErrEmptyFrame
	case uint64(n) > uint64(max):
		return Frame{}, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	t := Type(buf[0])
	if !t.Known() {
		return Frame{}, fmt.Errorf("%w: 0x%02x", ErrUnknownType, buf[0])
	}
	return Frame{Type: t, Payload: buf[1:]}, nil
}

// AppendFrame appends the encoding of one frame to dst.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// Marshal encodes v as a frame of type t.
func Marshal(t Type, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s: %w", t, err)
	}
	return AppendFrame(make([]byte, 0, headerSize+1+len(payload)), t, payload), nil
}

// WriteMessage encodes v and writes it as one frame with a single Write, so
// concurrent writers serialised by the caller never interleave.
func WriteMessage(w io.Writer, t Type, v any) error {
	b, err := Marshal(t, v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Decode unmarshals a frame's payload into v.
func (f Frame) Decode(v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("protocol: decode %s: %w", f.Type, err)
	}
	return nil
}
