package goroutines

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// ParseDebug2 parses a debug=2 text dump: the output of runtime.Stack(buf,
// true), of /debug/pprof/goroutine?debug=2, or of a crash with
// GOTRACEBACK=all. Lines before the first goroutine header (a panic message)
// are skipped; inside a goroutine every line must be a frame, a file:line, a
// "created by" or an elision marker, else the dump is rejected with the line
// number. Arguments are ignored, so goroutines that differ only in their
// arguments share a group.
//
// The runtime cuts debug=2 output at 64 MiB (about 60,000 goroutines with
// ordinary stacks), mid-line. Input that does not end in a newline is taken
// as cut: the unfinished goroutine is dropped and Truncated is set.
func ParseDebug2(data []byte) (*Snapshot, error) {
	p := debug2Parser{groups: make(map[keyHash]*Group)}
	truncated := len(data) > 0 && data[len(data)-1] != '\n'
	if truncated {
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		p.truncated = true
	}
	if err := p.parse(data); err != nil {
		return nil, err
	}
	if p.goroutines == 0 {
		return nil, errors.New("goroutines: no goroutine header found (not a debug=2 dump)")
	}
	s := &Snapshot{Format: FormatDebug2, Truncated: truncated, Groups: make([]*Group, 0, len(p.groups))}
	for _, g := range p.groups {
		s.Groups = append(s.Groups, g)
	}
	s.finish()
	return s, nil
}

type span struct{ fn, file []byte }

type debug2Parser struct {
	groups     map[keyHash]*Group
	goroutines int
	truncated  bool // input was cut: an unfinished last goroutine is dropped

	// the goroutine being read
	in      bool
	wait    []byte
	minutes int
	frames  []span
	lines   []int
	h       keyHash
	pending []byte // function line waiting for its file:line
}

func (p *debug2Parser) parse(data []byte) error {
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if err := p.line(line); err != nil {
			return fmt.Errorf("goroutines: debug=2 line %d: %w", lineNo, err)
		}
	}
	return p.endAt(true)
}

func (p *debug2Parser) line(line []byte) error {
	l := traceback.Classify(line)
	if l.Kind == traceback.Header {
		if err := p.end(); err != nil {
			return err
		}
		p.header(l.Name)
		return nil
	}
	if !p.in {
		return nil // preamble, e.g. the panic message
	}
	switch l.Kind {
	case traceback.Blank:
		return p.end()
	case traceback.File:
		if p.pending == nil {
			return errors.New("file:line without a function")
		}
		p.frames = append(p.frames, span{p.pending, l.Name})
		p.lines = append(p.lines, l.N)
		p.pending = nil
		return nil
	case traceback.Elided, traceback.Ancestor:
		return nil
	}
	if p.pending != nil {
		return fmt.Errorf("function %q has no file:line", truncate(p.pending))
	}
	switch l.Kind {
	case traceback.Call, traceback.CreatedBy:
		p.pending = l.Name
		return nil
	}
	if line[0] == '\t' {
		return fmt.Errorf("malformed file:line %q", truncate(line))
	}
	return fmt.Errorf("not a frame: %q", truncate(line))
}

// header starts a goroutine with the state of its header,
// "chan send, 5 minutes, locked to thread".
func (p *debug2Parser) header(state []byte) {
	p.in, p.frames, p.lines, p.pending, p.minutes = true, p.frames[:0], p.lines[:0], nil, 0
	p.wait = state
	// "select, 5 minutes, locked to thread": the first field is the state.
	if c := bytes.Index(state, []byte(", ")); c >= 0 {
		p.wait = state[:c]
		for _, f := range bytes.Split(state[c+2:], []byte(", ")) {
			if n, ok := bytes.CutSuffix(f, []byte(" minutes")); ok {
				if m, err := strconv.Atoi(string(n)); err == nil {
					p.minutes = m
				}
			}
		}
	}
}

// end closes the goroutine being read and adds it to its group.
func (p *debug2Parser) end() error { return p.endAt(false) }

func (p *debug2Parser) endAt(atEOF bool) error {
	if !p.in {
		return nil
	}
	if p.truncated && atEOF { // the goroutine the cut went through is incomplete
		p.in = false
		return nil
	}
	if p.pending != nil {
		return fmt.Errorf("function %q has no file:line", truncate(p.pending))
	}
	p.in = false
	p.goroutines++
	p.h.reset()
	for i, f := range p.frames {
		p.h.frameBytes(f.fn, f.file, p.lines[i])
	}
	g := p.groups[p.h]
	if g == nil {
		frames := make([]Frame, len(p.frames))
		for i, f := range p.frames {
			fn := string(f.fn)
			frames[i] = Frame{Function: fn, Pkg: traceback.PackageOf(fn), File: string(f.file), Line: p.lines[i]}
		}
		g = &Group{Key: p.h.key(), Frames: frames, Wait: Wait(p.wait), Location: locationOf(frames)}
		p.groups[p.h] = g
	}
	g.Count++
	g.WaitMinutes = max(g.WaitMinutes, p.minutes)
	return nil
}

func (h *keyHash) frameBytes(function, file []byte, line int) {
	for _, c := range function {
		h.byte(c)
	}
	h.byte(0)
	for _, c := range file {
		h.byte(c)
	}
	var buf [20]byte
	for _, c := range strconv.AppendInt(buf[:0], int64(line), 10) {
		h.byte(c)
	}
	h.byte('\n')
}

func truncate(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
