package profiler

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// ScrapeError is a failed fetch from the target, with the Reason it is
// counted under in ScrapeErrors.
type ScrapeError struct {
	Path       string
	Reason     string // ReasonUnreachable, ReasonTimeout, ...
	StatusCode int    // for ReasonStatus
	Err        error
}

func (e *ScrapeError) Error() string {
	return fmt.Sprintf("scrape %s: %s: %v", e.Path, e.Reason, e.Err)
}

func (e *ScrapeError) Unwrap() error { return e.Err }

// acquire takes the target: one fetch at a time, whoever asks (schedule,
// trigger or developer), so the target never answers two profile requests
// of ours at once and the sidecar never holds two bodies. The holder keeps
// it until the body is parsed.
func (p *Profiler) acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.target <- struct{}{}:
		return func() { <-p.target }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetchProfile fetches a debug=0 profile and parses it. Every failure but a
// 404 of the goroutineleak profile is counted in ScrapeErrors. data is the
// body as served (gzipped), kept as the dump.
func (p *Profiler) fetchProfile(ctx context.Context, path, profile string) (data []byte, snap *goroutines.Snapshot, err error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	data, err = p.fetch(ctx, path, p.cfg.MaxProfileBytes)
	if err == nil {
		var raw []byte
		if raw, err = inflate(path, data, p.cfg.MaxProfileBytes); err == nil {
			if snap, err = goroutines.ParseProfile(raw); err == nil {
				return data, snap, nil
			}
			err = &ScrapeError{Path: path, Reason: ReasonMalformed, Err: err}
		}
	}
	var se *ScrapeError
	// A scrape cut short by our own shutdown says nothing about the target.
	if ctx.Err() == nil && errors.As(err, &se) && !(profile == ProfileGoroutineLeak && se.StatusCode == http.StatusNotFound) {
		p.m.scrapeErrors.WithLabelValues(se.Reason).Inc()
	}
	return nil, nil, err
}

// inflate returns a gzipped profile's uncompressed bytes, at most max of
// them. It inflates twice: once to count, holding nothing, and once into a
// buffer of the exact size. So a gzip bomb (a megabyte that inflates to a
// gigabyte) costs a little CPU and no memory before it is refused as too
// large. An uncompressed profile is returned as is (fetch capped it).
func inflate(path string, data []byte, max int64) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	malformed := func(err error) error {
		return &ScrapeError{Path: path, Reason: ReasonMalformed, Err: fmt.Errorf("gunzip: %w", err)}
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, malformed(err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, max+1))
	if err != nil {
		return nil, malformed(err)
	}
	if n > max {
		return nil, &ScrapeError{Path: path, Reason: ReasonTooLarge,
			Err: fmt.Errorf("profile inflates beyond the %d-byte limit (%d bytes compressed)", max, len(data))}
	}
	if err := zr.Reset(bytes.NewReader(data)); err != nil {
		return nil, malformed(err)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(zr, raw); err != nil {
		return nil, malformed(err)
	}
	return raw, nil
}

// fetch GETs target+path and returns at most max bytes of body; a longer
// body is an error, not a truncated profile. Callers hold the target.
func (p *Profiler) fetch(ctx context.Context, path string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.Target+path, nil)
	if err != nil {
		return nil, &ScrapeError{Path: path, Reason: ReasonUnreachable, Err: err}
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, &ScrapeError{Path: path, Reason: classify(err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		return nil, &ScrapeError{Path: path, Reason: ReasonStatus, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("HTTP status %s", resp.Status)}
	}
	if resp.ContentLength > max {
		return nil, &ScrapeError{Path: path, Reason: ReasonTooLarge,
			Err: fmt.Errorf("Content-Length %d exceeds the %d-byte limit", resp.ContentLength, max)}
	}
	// resp.Body is already inflated when the transport negotiated gzip
	// itself, so this cap holds for that layer too.
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &ScrapeError{Path: path, Reason: classify(err), Err: fmt.Errorf("reading body: %w", err)}
	}
	if int64(len(data)) > max {
		return nil, &ScrapeError{Path: path, Reason: ReasonTooLarge, Err: fmt.Errorf("body exceeds the %d-byte limit", max)}
	}
	return data, nil
}

func classify(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, http.ErrHandlerTimeout) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return ReasonTimeout
	}
	return ReasonUnreachable
}

// fetchStacks fetches the debug=2 text dump on a developer's request, never
// on a schedule: it stops the target's world while it prints.
func (p *Profiler) fetchStacks(ctx context.Context) ([]byte, error) {
	const path = "/debug/pprof/goroutine?debug=2"
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	start := time.Now()
	data, err := p.fetch(ctx, path, p.cfg.MaxStacksBytes)
	if err != nil {
		var se *ScrapeError
		if errors.As(err, &se) && ctx.Err() == nil {
			p.m.scrapeErrors.WithLabelValues(se.Reason).Inc()
		}
		return nil, err
	}
	if f, ok := goroutines.Detect(data); !ok || f != goroutines.FormatDebug2 {
		p.m.scrapeErrors.WithLabelValues(ReasonMalformed).Inc()
		return nil, &ScrapeError{Path: path, Reason: ReasonMalformed, Err: goroutines.ErrUnknownFormat}
	}
	p.m.scrapeDuration.WithLabelValues(ProfileStacks).Observe(time.Since(start).Seconds())
	return data, nil
}
