package e2e

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// notification is the part of Alertmanager's webhook payload (version 4)
// the test reads.
type notification struct {
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []alert `json:"alerts"`
	// Path is the URL path it was posted to; the overlay gives each
	// receiver its own.
	Path string `json:"-"`
}

type alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

// receiver stands in for the pager and the ops channel: it records every
// notification Alertmanager posts.
type receiver struct {
	mu     sync.Mutex
	got    []notification
	notify chan struct{}
}

func newReceiver() *receiver { return &receiver{notify: make(chan struct{}, 1)} }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var n notification
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.Path = req.URL.Path
	r.mu.Lock()
	r.got = append(r.got, n)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
}

// all returns the notifications so far.
func (r *receiver) all() []notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification(nil), r.got...)
}

// find returns the first firing alert delivered to receiver name whose
// labels include want.
func (r *receiver) find(name string, want map[string]string) (notification, alert, bool) {
	for _, n := range r.all() {
		if n.Receiver != name {
			continue
		}
		for _, a := range n.Alerts {
			if a.Status == "firing" && matches(a.Labels, want) {
				return n, a, true
			}
		}
	}
	return notification{}, alert{}, false
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
