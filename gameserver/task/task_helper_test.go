package task

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/session"
)

// The report's unit tests.
func TestClientWrite_NilSession(t *testing.T) {
	err := clientWrite(nil, []byte("test"), 4)
	if err == nil || !strings.Contains(err.Error(), "session is nil") {
		t.Fatalf("clientWrite(nil) = %v, want an error containing \"session is nil\"", err)
	}
}

func TestClientWrite_ClosedSession(t *testing.T) {
	s := &session.GateSession{}
	s.Close()
	err := clientWrite(s, []byte("test"), 4)
	if err == nil || !strings.Contains(err.Error(), "session is closed") {
		t.Fatalf("clientWrite(closed) = %v, want an error containing \"session is closed\"", err)
	}
}

func TestClientWrite_OpenSessionOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := session.New(1, "p", conn, time.Second)
	if err := clientWrite(s, []byte("hello world"), 5); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if g := <-got; g != "hello" {
		t.Fatalf("peer read %q, want the first size bytes", g)
	}
	if err := clientWrite(s, []byte("x"), 1); err == nil || !strings.Contains(err.Error(), "session is closed") {
		t.Fatalf("after close: %v", err)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	p := RetryPolicy{Base: 100 * time.Millisecond, Max: time.Second, Tries: 10}
	for n := 1; n <= 10; n++ {
		want := min(p.Base<<(n-1), p.Max)
		for range 50 {
			d := p.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestLeakRegistryReleasesWaiters(t *testing.T) {
	var r leakRegistry
	r.init()
	w1, w2 := r.add(), r.add()
	w1.release()
	w1.release() // idempotent
	if r.len() != 1 {
		t.Fatalf("len = %d, want 1", r.len())
	}
	done := make(chan struct{})
	go func() { <-w2.ch; close(done) }()
	r.releaseAll()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("releaseAll did not release the waiter")
	}
	if w3 := r.add(); w3 != nil {
		select {
		case <-w3.ch:
		default:
			t.Fatal("a waiter added after releaseAll must not block")
		}
	}
}
