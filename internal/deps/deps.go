// Package deps pins the project's dependencies while its packages are being
// written in parallel. Removed at integration.
package deps

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/google/pprof/profile"
	_ "github.com/grafana/grafana-foundation-sdk/go/cog"
	_ "github.com/grafana/grafana-foundation-sdk/go/common"
	_ "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	_ "github.com/grafana/grafana-foundation-sdk/go/prometheus"
	_ "github.com/grafana/grafana-foundation-sdk/go/stat"
	_ "github.com/grafana/grafana-foundation-sdk/go/table"
	_ "github.com/grafana/grafana-foundation-sdk/go/timeseries"
	_ "github.com/maruel/panicparse/v2/stack"
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	_ "github.com/prometheus/client_golang/api/prometheus/v1"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/collectors"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/prometheus/client_golang/prometheus/testutil/promlint"
	_ "github.com/prometheus/common/model"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "k8s.io/client-go/kubernetes/scheme"
	_ "sigs.k8s.io/yaml"
)
