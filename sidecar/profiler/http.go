package profiler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// Register mounts the API on mux, each route wrapped with Config.Auth. Each
// route is a thin layer over a method a UI in the same process can call
// (Store().List, CaptureNow, Store().Open, DumpGroups, DiffDumps, Status,
// Stacks):
//
//	GET  /api/v1/dumps                      the dumps, newest first
//	POST /api/v1/dumps                      capture one now ({"reason": "..."} optional)
//	GET  /api/v1/dumps/{id}                 the raw pprof profile (go tool pprof opens it)
//	GET  /api/v1/dumps/{id}/groups          its stack groups
//	GET  /api/v1/dumps/{id}/diff?base={id}  locations whose goroutine count changed since base
//	GET  /api/v1/leaks                      current leak suspects and scrape state
//	GET  /api/v1/stacks                     debug=2 text fetched now (size-capped)
//	POST /api/v1/alertmanager               Alertmanager webhook: dump when an alert for this service fires
func (p *Profiler) Register(mux *http.ServeMux) {
	handle := func(pattern string, h http.HandlerFunc) {
		var hh http.Handler = h
		if p.cfg.Auth != nil {
			hh = p.cfg.Auth(hh)
		}
		mux.Handle(pattern, hh)
	}
	handle("GET /api/v1/dumps", p.handleList)
	handle("POST /api/v1/dumps", p.handleCapture)
	handle("GET /api/v1/dumps/{id}", p.handleRaw)
	handle("GET /api/v1/dumps/{id}/groups", p.handleGroups)
	handle("GET /api/v1/dumps/{id}/diff", p.handleDiff)
	handle("GET /api/v1/leaks", p.handleLeaks)
	handle("GET /api/v1/stacks", p.handleStacks)
	handle("POST /api/v1/alertmanager", p.handleAlertmanager)
}

// DumpList is the body of GET /api/v1/dumps.
type DumpList struct {
	Service string       `json:"service"`
	Dumps   []dumps.Meta `json:"dumps"`
}

// GroupsResponse is the body of GET /api/v1/dumps/{id}/groups.
type GroupsResponse struct {
	Dump                 dumps.Meta `json:"dump"`
	*goroutines.Snapshot            // format, total, groups
}

// DiffResponse is the body of GET /api/v1/dumps/{id}/diff.
type DiffResponse struct {
	Base    dumps.Meta          `json:"base"`
	Dump    dumps.Meta          `json:"dump"`
	Changes []goroutines.Change `json:"changes"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// storeStatus maps store and fetch errors to HTTP statuses.
func storeStatus(err error) int {
	var se *ScrapeError
	switch {
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests
	case errors.Is(err, dumps.ErrInvalidID):
		return http.StatusBadRequest
	case errors.Is(err, dumps.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, dumps.ErrNoSpace), errors.Is(err, dumps.ErrTooLarge):
		return http.StatusInsufficientStorage
	case errors.As(err, &se):
		if se.Reason == ReasonTimeout {
			return http.StatusGatewayTimeout
		}
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

func (p *Profiler) handleList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, DumpList{Service: p.cfg.Service, Dumps: p.store.List()})
}

// ErrBusy is returned by the on-demand methods while another on-demand
// request is waiting or fetching: each costs the target.
var ErrBusy = errors.New("another on-demand capture is running")

// onDemand runs f unless another on-demand request is running.
func (p *Profiler) onDemand(f func() error) error {
	select {
	case p.busy <- struct{}{}:
		defer func() { <-p.busy }()
		return f()
	default:
		return ErrBusy
	}
}

// CaptureNow captures a dump for a developer (trigger "manual"), one such
// request at a time: ErrBusy otherwise. POST /api/v1/dumps calls it.
func (p *Profiler) CaptureNow(ctx context.Context, reason string) (m dumps.Meta, err error) {
	if len(reason) > 256 {
		reason = reason[:256]
	}
	err = p.onDemand(func() error {
		m, err = p.Capture(ctx, TriggerManual, reason)
		return err
	})
	return m, err
}

// Stacks fetches the target's debug=2 text dump now, size-capped, one
// on-demand request at a time (ErrBusy otherwise). It stops the target's
// world while it prints, so it never runs on a schedule.
func (p *Profiler) Stacks(ctx context.Context) (data []byte, err error) {
	err = p.onDemand(func() error {
		data, err = p.fetchStacks(ctx)
		return err
	})
	return data, err
}

// DumpGroups parses a kept dump into its stack groups, largest first.
func (p *Profiler) DumpGroups(id string) (GroupsResponse, error) {
	data, m, err := p.store.Read(id)
	if err != nil {
		return GroupsResponse{}, err
	}
	s, err := goroutines.ParseProfile(data)
	if err != nil {
		return GroupsResponse{}, fmt.Errorf("dump %s: %w", id, err)
	}
	return GroupsResponse{Dump: m, Snapshot: s}, nil
}

// DiffDumps returns the code locations whose goroutine count changed from
// dump baseID to dump id, largest change first (goroutines.Diff).
func (p *Profiler) DiffDumps(baseID, id string) (DiffResponse, error) {
	base, err := p.DumpGroups(baseID)
	if err != nil {
		return DiffResponse{}, fmt.Errorf("base: %w", err)
	}
	cur, err := p.DumpGroups(id)
	if err != nil {
		return DiffResponse{}, err
	}
	changes := goroutines.Diff(base.Snapshot, cur.Snapshot)
	if changes == nil {
		changes = []goroutines.Change{}
	}
	return DiffResponse{Base: base.Dump, Dump: cur.Dump, Changes: changes}, nil
}

// writeResult writes v, or err with its status; ErrBusy asks to retry.
func writeResult(w http.ResponseWriter, code int, v any, err error) {
	if err != nil {
		if errors.Is(err, ErrBusy) {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, storeStatus(err), err)
		return
	}
	writeJSON(w, code, v)
}

func (p *Profiler) handleCapture(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body: %w", err))
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
			return
		}
	}
	m, err := p.CaptureNow(r.Context(), req.Reason)
	if err == nil {
		w.Header().Set("Location", "/api/v1/dumps/"+m.ID)
	}
	writeResult(w, http.StatusCreated, m, err)
}

func (p *Profiler) handleRaw(w http.ResponseWriter, r *http.Request) {
	f, m, err := p.store.Open(r.PathValue("id"))
	if err != nil {
		writeError(w, storeStatus(err), err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.pb.gz"`, m.Service, m.ID))
	http.ServeContent(w, r, "", m.Time, f)
}

func (p *Profiler) handleGroups(w http.ResponseWriter, r *http.Request) {
	g, err := p.DumpGroups(r.PathValue("id"))
	writeResult(w, http.StatusOK, g, err)
}

func (p *Profiler) handleDiff(w http.ResponseWriter, r *http.Request) {
	baseID := r.URL.Query().Get("base")
	if baseID == "" {
		writeError(w, http.StatusBadRequest, errors.New("missing ?base={id}"))
		return
	}
	d, err := p.DiffDumps(baseID, r.PathValue("id"))
	writeResult(w, http.StatusOK, d, err)
}

func (p *Profiler) handleLeaks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, p.Status())
}

func (p *Profiler) handleStacks(w http.ResponseWriter, r *http.Request) {
	data, err := p.Stacks(r.Context())
	if err != nil {
		writeResult(w, 0, nil, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(data)
}

// alertmanagerWebhook is the part of Alertmanager's webhook payload (version
// 4) the profiler reads.
type alertmanagerWebhook struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status   string            `json:"status"`
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
	} `json:"alerts"`
}

// AlertResponse is the body of POST /api/v1/alertmanager.
type AlertResponse struct {
	Matched  []string `json:"matched"`  // alertnames firing for this service
	Queued   bool     `json:"queued"`   // a dump capture was queued
	Cooldown bool     `json:"cooldown"` // matched, but a recent alert dump suppresses this one
}

func (p *Profiler) handleAlertmanager(w http.ResponseWriter, r *http.Request) {
	var hook alertmanagerWebhook
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err := dec.Decode(&hook); err != nil {
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, fmt.Errorf("alertmanager payload: %w", err))
		return
	}
	resp := AlertResponse{Matched: []string{}}
	for _, a := range hook.Alerts {
		if a.Status == "firing" && a.Labels[metrics.LabelService] == p.cfg.Service {
			resp.Matched = append(resp.Matched, a.Labels["alertname"])
		}
	}
	if len(resp.Matched) > 0 {
		p.mu.Lock()
		ok := p.cooledDown(TriggerAlert, time.Now())
		p.mu.Unlock()
		if ok {
			resp.Queued = p.enqueue(TriggerAlert, fmt.Sprintf("alerts firing: %v", resp.Matched))
		} else {
			resp.Cooldown = true
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
