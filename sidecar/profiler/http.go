package profiler

import (
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

// Register mounts the API on mux, each route wrapped with Config.Auth:
//
//	GET  /api/v1/dumps                      the dumps, newest first
//	POST /api/v1/dumps                      capture one now ({"reason": "..."} optional)
//	GET  /api/v1/dumps/{id}                 the raw pprof profile (go tool pprof opens it)
//	GET  /api/v1/dumps/{id}/groups          its stack groups
//	GET  /api/v1/dumps/{id}/diff?base={id}  groups that grew or shrank since base
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

// tryBusy admits one on-demand fetch at a time: each costs the target.
func (p *Profiler) tryBusy(w http.ResponseWriter) bool {
	select {
	case p.busy <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, errors.New("another on-demand capture is running"))
		return false
	}
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
	if len(req.Reason) > 256 {
		req.Reason = req.Reason[:256]
	}
	if !p.tryBusy(w) {
		return
	}
	defer func() { <-p.busy }()
	m, err := p.Capture(r.Context(), TriggerManual, req.Reason)
	if err != nil {
		writeError(w, storeStatus(err), err)
		return
	}
	w.Header().Set("Location", "/api/v1/dumps/"+m.ID)
	writeJSON(w, http.StatusCreated, m)
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

func (p *Profiler) snapshot(id string) (dumps.Meta, *goroutines.Snapshot, error) {
	data, m, err := p.store.Read(id)
	if err != nil {
		return dumps.Meta{}, nil, err
	}
	s, err := goroutines.ParseProfile(data)
	if err != nil {
		return dumps.Meta{}, nil, fmt.Errorf("dump %s: %w", id, err)
	}
	return m, s, nil
}

func (p *Profiler) handleGroups(w http.ResponseWriter, r *http.Request) {
	m, s, err := p.snapshot(r.PathValue("id"))
	if err != nil {
		writeError(w, storeStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, GroupsResponse{Dump: m, Snapshot: s})
}

func (p *Profiler) handleDiff(w http.ResponseWriter, r *http.Request) {
	baseID := r.URL.Query().Get("base")
	if baseID == "" {
		writeError(w, http.StatusBadRequest, errors.New("missing ?base={id}"))
		return
	}
	bm, base, err := p.snapshot(baseID)
	if err != nil {
		writeError(w, storeStatus(err), fmt.Errorf("base: %w", err))
		return
	}
	m, cur, err := p.snapshot(r.PathValue("id"))
	if err != nil {
		writeError(w, storeStatus(err), err)
		return
	}
	changes := goroutines.Diff(base, cur)
	if changes == nil {
		changes = []goroutines.Change{}
	}
	writeJSON(w, http.StatusOK, DiffResponse{Base: bm, Dump: m, Changes: changes})
}

func (p *Profiler) handleLeaks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, p.Status())
}

func (p *Profiler) handleStacks(w http.ResponseWriter, r *http.Request) {
	if !p.tryBusy(w) {
		return
	}
	defer func() { <-p.busy }()
	data, err := p.fetchStacks(r.Context())
	if err != nil {
		writeError(w, storeStatus(err), err)
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
