package profiler

import (
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

// fetchProfile fetches a debug=0 profile and parses it. Every failure but a
// 404 of the goroutineleak profile is counted in ScrapeErrors.
func (p *Profiler) fetchProfile(ctx context.Context, path, profile string) ([]byte, *goroutines.Snapshot, error) {
	data, err := p.fetch(ctx, path, p.cfg.MaxProfileBytes)
	if err == nil {
		var snap *goroutines.Snapshot
		if snap, err = goroutines.ParseProfile(data); err == nil {
			return data, snap, nil
		}
		err = &ScrapeError{Path: path, Reason: ReasonMalformed, Err: err}
	}
	var se *ScrapeError
	// A scrape cut short by our own shutdown says nothing about the target.
	if ctx.Err() == nil && errors.As(err, &se) && !(profile == ProfileGoroutineLeak && se.StatusCode == http.StatusNotFound) {
		p.m.scrapeErrors.WithLabelValues(se.Reason).Inc()
	}
	return nil, nil, err
}

// fetch GETs target+path and returns at most max bytes of body; a longer
// body is an error, not a truncated profile.
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

// fetchStacks fetches the debug=2 text dump on a developer's request. It
// stops the target's world for a moment, so only one runs at a time.
func (p *Profiler) fetchStacks(ctx context.Context) ([]byte, error) {
	start := time.Now()
	data, err := p.fetch(ctx, "/debug/pprof/goroutine?debug=2", p.cfg.MaxStacksBytes)
	var se *ScrapeError
	if errors.As(err, &se) {
		p.m.scrapeErrors.WithLabelValues(se.Reason).Inc()
		return nil, err
	}
	if _, ok := goroutines.Detect(data); !ok {
		p.m.scrapeErrors.WithLabelValues(ReasonMalformed).Inc()
		return nil, &ScrapeError{Path: "/debug/pprof/goroutine?debug=2", Reason: ReasonMalformed, Err: goroutines.ErrUnknownFormat}
	}
	p.m.scrapeDuration.WithLabelValues(ProfileStacks).Observe(time.Since(start).Seconds())
	return data, nil
}
