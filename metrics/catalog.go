package metrics

// Label names.
const (
	LabelService   = "service"    // target label set by the scrape, never by the exporter
	LabelNamespace = "namespace"  // target label on Kubernetes
	LabelCluster   = "cluster"    // external or target label of multi-cluster setups
	LabelReason    = "reason"     // why a write, parse or scrape failed
	LabelOutcome   = "outcome"    // how a bet's result left the server
	LabelKind      = "kind"       // kind of panic: nil_dereference, index_out_of_range, ...
	LabelCrashSite = "crash_site" // grouped crash site, bounded to top-N plus "other"
	LabelLocation  = "location"   // code location of a goroutine leak suspect, bounded
	LabelSignal    = "signal"     // which leak signal flagged a suspect
	LabelTrigger   = "trigger"    // why a goroutine dump was captured
	LabelProfile   = "profile"    // which pprof profile was scraped
	LabelMode      = "mode"       // "legacy" or "patched"
)

// Values of LabelReason on ClientWriteFailures.
const (
	ReasonNilSession    = "nil_session"
	ReasonClosedSession = "closed_session"
	ReasonIOError       = "io_error"
	ReasonTimeout       = "timeout"
)

// Values of LabelReason on ConnectionsRefused.
const (
	ReasonMaxConns        = "max_conns"       // the cap on concurrent connections
	ReasonUnauthenticated = "unauthenticated" // the tighter cap on connections before their hello
)

// Values of LabelOutcome on BetResults: where each settled bet's result went
// first. Failed means the bet never produced a result for the player (the
// legacy panic, the report's "lost bets").
const (
	OutcomeDelivered    = "delivered"
	OutcomeQueued       = "queued"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeFailed       = "failed"
)

// KindFatal is the LabelKind of a fatal runtime error (concurrent map writes,
// stack overflow, out of memory, deadlock, signal): the process died, and the
// runtime wrote the trace through debug.SetCrashOutput.
const KindFatal = "fatal"

// Values of LabelSignal on LeakSuspects.
const (
	SignalBlocked = "blocked" // many goroutines parked at one channel operation
	SignalGrowth  = "growth"  // a stack group rising across scrapes
	SignalRuntime = "runtime" // proven leaked by the runtime's goroutineleak profile
)

// OtherCrashSite is the crash_site (and location) value that absorbs
// everything past the cardinality budget.
const OtherCrashSite = "other"

// Series owned by other exporters, named here so rules and dashboards import
// every name from one place.
var (
	GoGoroutines           = Metric{Name: "go_goroutines", Type: Gauge, Help: "Number of goroutines that currently exist (Go collector)."}
	GoGCDuration           = Metric{Name: "go_gc_duration_seconds", Type: Histogram, Help: "GC pause durations (Go collector, a summary)."}
	GoHeapInuse            = Metric{Name: "go_memstats_heap_inuse_bytes", Type: Gauge, Help: "Heap bytes in use (Go collector)."}
	ProcessResidentMemory  = Metric{Name: "process_resident_memory_bytes", Type: Gauge, Help: "Resident memory size (process collector)."}
	ProcessCPUSecondsTotal = Metric{Name: "process_cpu_seconds_total", Type: Counter, Help: "CPU time (process collector)."}
	Up                     = Metric{Name: "up", Type: Gauge, Help: "Whether Prometheus reached the target."}
	Alerts                 = Metric{Name: "ALERTS", Type: Gauge, Help: "Pending and firing alerts (Prometheus' rule manager), labelled alertname and alertstate."}
	AlertsForState         = Metric{Name: "ALERTS_FOR_STATE", Type: Gauge, Help: "When each pending or firing alert became active, in Unix seconds (Prometheus' rule manager)."}
)

// Game server metrics. The first two names are the incident report's own.
var (
	NilSessionAttempts = Metric{
		Name: "nil_session_attempts_total", Type: Counter,
		Help: "Writes to a client attempted with a nil session (the incident's panic site).",
	}
	ClientWriteFailures = Metric{
		Name: "client_write_failures_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Failed writes to a client session, by reason.",
	}
	SessionsActive = Metric{
		Name: "gameserver_sessions_active", Type: Gauge,
		Help: "Authenticated client sessions currently open.",
	}
	SessionsCreated = Metric{
		Name: "gameserver_sessions_created_total", Type: Counter,
		Help: "Client sessions authenticated.",
	}
	SessionsClosed = Metric{
		Name: "gameserver_sessions_closed_total", Type: Counter,
		Help: "Client sessions closed, including stale sessions reaped by the session manager.",
	}
	ConnectionsRefused = Metric{
		Name: "gameserver_connections_refused_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Game connections closed on accept because a connection cap was reached, by cap.",
	}
	PanicsRecovered = Metric{
		Name: "gameserver_panics_recovered_total", Type: Counter,
		Help: "Panics caught by the recover helper (each writes one stacktrace file).",
	}
	BetDuration = Metric{
		Name: "gameserver_bet_duration_seconds", Type: Histogram,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		Help:    "Time from a bet request to its result leaving the server.",
	}
	BetResults = Metric{
		Name: "gameserver_bet_results_total", Type: Counter, Labels: []string{LabelOutcome},
		Help: "Settled bets by where their result went first: delivered, queued for retry, dead-lettered, or failed.",
	}
	PendingResponses = Metric{
		Name: "gameserver_pending_responses", Type: Gauge,
		Help: "Results waiting in the in-memory retry queue.",
	}
	DeadLetters = Metric{
		Name: "gameserver_dead_letters", Type: Gauge,
		Help: "Results in the durable dead-letter store awaiting the player's reconnect.",
	}
	BetsPruned = Metric{
		Name: "gameserver_bets_pruned_total", Type: Counter,
		Help: "Settled, acknowledged bet records deleted from the ledger once older than -bet-history.",
	}
	BetsForgotten = Metric{
		Name: "gameserver_bets_forgotten_total", Type: Counter,
		Help: "Bets refused because their id is not above the player's greatest pruned bet id (a resend of a pruned bet, or a non-increasing id).",
	}
	MemoryInUse = Metric{
		Name: "gameserver_memory_in_use_bytes", Type: Gauge,
		Help: "Memory the server holds (resident set), compared against gameserver_memory_limit_bytes.",
	}
	MemoryLimit = Metric{
		Name: "gameserver_memory_limit_bytes", Type: Gauge,
		Help: "Configured memory limit: the cgroup limit, else GOMEMLIMIT, else -memory-limit.",
	}
	// GameserverBuildInfo is exported by cli.BuildInfo (client_golang's
	// version collector): version, revision, branch, goversion, goos, goarch
	// and tags, from prometheus/common/version's link-time variables.
	GameserverBuildInfo = Metric{
		Name: "gameserver_build_info", Type: Gauge,
		Help: "Always 1; labels carry the build's version, revision, branch and Go version.",
	}
	GameserverModeInfo = Metric{
		Name: "gameserver_mode_info", Type: Gauge, Labels: []string{LabelMode},
		Help: "Always 1; mode is \"legacy\" when the incident's bug is switched on (-legacy), else \"patched\".",
	}
)

// Sidecar metrics, part 1: stacktrace files.
var (
	Panics = Metric{
		Name: "stackwatch_panics_total", Type: Counter, Labels: []string{LabelKind, LabelCrashSite},
		Help: "Panics read from stacktrace files, by kind and crash site (top-N sites, the rest as \"other\").",
	}
	StacktraceFiles = Metric{
		Name: "stackwatch_stacktrace_files", Type: Gauge,
		Help: "Stacktrace files on disk now.",
	}
	StacktraceBytes = Metric{
		Name: "stackwatch_stacktrace_bytes", Type: Gauge,
		Help: "Bytes of stacktrace files on disk now.",
	}
	LastPanicTimestamp = Metric{
		Name: "stackwatch_last_panic_timestamp_seconds", Type: Gauge,
		Help: "Unix time of the newest panic file seen.",
	}
	CrashGroups = Metric{
		Name: "stackwatch_crash_groups", Type: Gauge,
		Help: "Distinct crash groups known.",
	}
	ClosedSessionWarnings = Metric{
		Name: "stackwatch_closed_session_warnings_total", Type: Counter,
		Help: "Closed-session warnings read from the server's JSON log (the graceful path).",
	}
	ParseFailures = Metric{
		Name: "stackwatch_parse_failures_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Stacktrace files that could not be parsed as a Go panic, by reason.",
	}
	Rescans = Metric{
		Name: "stackwatch_rescans_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Full rescans of the log directory, by reason (overflow, timer, recreated).",
	}
	WatchPolling = Metric{
		Name: "stackwatch_watch_polling", Type: Gauge,
		Help: "1 while the watcher polls because inotify could not be had.",
	}
	RetentionDeletedFiles = Metric{
		Name: "stackwatch_retention_deleted_files_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Stacktrace files deleted by retention, by reason (age, count, size).",
	}
	RetentionDeletedBytes = Metric{
		Name: "stackwatch_retention_deleted_bytes_total", Type: Counter,
		Help: "Bytes of stacktrace files deleted by retention.",
	}
	FatalCrashes = Metric{
		Name: "stackwatch_fatal_crashes_total", Type: Counter,
		Help: "Panics the game server died of (a fatal error, or a fatal-*.stacktrace.log written by runtime/debug.SetCrashOutput): each one is a restart.",
	}
	LogDirMissing = Metric{
		Name: "stackwatch_log_dir_missing", Type: Gauge,
		Help: "1 while the watched log directory does not exist.",
	}
	AuthFailures = Metric{
		Name: "stackwatch_auth_failures_total", Type: Counter,
		Help: "Requests to the API or web UI that presented a wrong token.",
	}
	AuthThrottled = Metric{
		Name: "stackwatch_auth_throttled_total", Type: Counter,
		Help: "Requests refused with 429 because their client, or all clients together, sent too many wrong tokens.",
	}
	// SidecarBuildInfo is written by internal/cli.BuildInfo (client_golang's
	// version collector), named here so rules and dashboards can use it.
	SidecarBuildInfo = Metric{
		Name: "stackwatch_sidecar_build_info", Type: Gauge,
		Labels: []string{"version", "revision", "branch", "goversion", "goos", "goarch", "tags"},
		Help:   "A metric with a constant '1' value labeled by version, revision, branch, goversion from which stackwatch_sidecar was built, and the goos and goarch for the build.",
	}
)

// Sidecar metrics, part 2: goroutine profiles.
var (
	Goroutines = Metric{
		Name: "stackwatch_goroutines", Type: Gauge,
		Help: "Goroutines in the target's last scraped goroutine profile.",
	}
	GoroutineStackGroups = Metric{
		Name: "stackwatch_goroutine_stack_groups", Type: Gauge,
		Help: "Distinct goroutine stacks in the last scraped profile.",
	}
	LeakSuspects = Metric{
		Name: "stackwatch_goroutine_leak_suspects", Type: Gauge, Labels: []string{LabelLocation, LabelSignal},
		Help: "Goroutines at each suspected leak location, by the signal that flagged it (bounded; the rest as \"other\").",
	}
	GoroutinesLeaked = Metric{
		Name: "stackwatch_goroutines_leaked", Type: Gauge,
		Help: "Goroutines the runtime's goroutineleak profile proved leaked.",
	}
	GoroutineLeakProfileAvailable = Metric{
		Name: "stackwatch_goroutineleak_profile_available", Type: Gauge,
		Help: "1 when the target serves /debug/pprof/goroutineleak.",
	}
	ScrapeDuration = Metric{
		Name: "stackwatch_scrape_duration_seconds", Type: Histogram, Labels: []string{LabelProfile},
		Help: "Time to fetch and analyze a goroutine profile.",
	}
	ScrapeErrors = Metric{
		Name: "stackwatch_scrape_errors_total", Type: Counter, Labels: []string{LabelReason},
		Help: "Failed profile scrapes, by reason (unreachable, timeout, status, too_large, malformed).",
	}
	Dumps = Metric{
		Name: "stackwatch_dumps", Type: Gauge,
		Help: "Goroutine dumps kept in the ring.",
	}
	DumpsBytes = Metric{
		Name: "stackwatch_dumps_bytes", Type: Gauge,
		Help: "Bytes of goroutine dumps kept in the ring.",
	}
	DumpsCaptured = Metric{
		Name: "stackwatch_dumps_captured_total", Type: Counter, Labels: []string{LabelTrigger},
		Help: "Goroutine dumps captured, by trigger (schedule, threshold, panics, alert, manual).",
	}
)

// Gameserver lists the game server's own metric families.
func Gameserver() []Metric {
	return []Metric{NilSessionAttempts, ClientWriteFailures, SessionsActive, SessionsCreated, SessionsClosed,
		PanicsRecovered, BetDuration, BetResults, PendingResponses, DeadLetters, BetsPruned, BetsForgotten, MemoryInUse, MemoryLimit,
		GameserverBuildInfo, GameserverModeInfo}
}

// Sidecar lists the sidecar's own metric families.
func Sidecar() []Metric {
	return []Metric{Panics, StacktraceFiles, StacktraceBytes, LastPanicTimestamp, CrashGroups,
		ClosedSessionWarnings, ParseFailures, Rescans, WatchPolling, RetentionDeletedFiles, RetentionDeletedBytes,
		FatalCrashes, LogDirMissing, AuthFailures, AuthThrottled, SidecarBuildInfo, Goroutines, GoroutineStackGroups, LeakSuspects, GoroutinesLeaked, GoroutineLeakProfileAvailable,
		ScrapeDuration, ScrapeErrors, Dumps, DumpsBytes, DumpsCaptured}
}
