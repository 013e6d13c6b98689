package charts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "stackwatch"
	allOnValues = "stackwatch/ci/all-on-values.yaml"
	// kubeVersion is passed to helm: a helm built with `go install` reports
	// Kubernetes v1.20 by default, below the chart's kubeVersion constraint.
	kubeVersion = "1.31.0"
	releaseName = "sw"
	releaseNS   = "games"
)

// scheme knows every kind the chart may render: the built-in API groups and
// the prometheus-operator CRDs. Anything else fails to decode.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(monitoringv1.AddToScheme(s))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(s))
	return s
}()

// strictCodec rejects unknown and duplicate fields (case-sensitively, unlike
// encoding/json's DisallowUnknownFields) as well as unregistered kinds.
var strictCodec = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// object is one rendered manifest.
type object struct {
	Source string // the template that produced it ("stackwatch/templates/x.yaml")
	GVK    schema.GroupVersionKind
	Obj    runtime.Object
	Raw    []byte
}

// decodeStrict decodes one YAML document into its typed object.
func decodeStrict(doc []byte) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := strictCodec.Decode(doc, nil, nil)
	if err != nil {
		return nil, gvk, err
	}
	return obj, gvk, nil
}

// splitDocuments splits a multi-document YAML stream, dropping documents that
// hold only comments or whitespace.
func splitDocuments(stream []byte) ([][]byte, error) {
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("invalid YAML document: %w\n%s", err, doc)
		}
		if len(probe) == 0 {
			continue
		}
		docs = append(docs, doc)
	}
}

// sourceOf returns the template named by helm's "# Source:" comment.
func sourceOf(doc []byte) string {
	for line := range strings.Lines(string(doc)) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return s
		}
	}
	return ""
}

// helmBinary finds helm on PATH or in $(go env GOPATH)/bin. In CI a missing
// helm fails the test; elsewhere the test is skipped with instructions.
func helmBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for dir := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			p := filepath.Join(dir, "bin", "helm")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	const msg = "helm not found on PATH or in $(go env GOPATH)/bin; install it with: go install helm.sh/helm/v3/cmd/helm@v3.22.0"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runHelm runs helm with its cache, config and data directories in a
// temporary directory, so tests neither read nor write the user's helm setup.
func runHelm(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	helm := helmBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// templateArgs builds `helm template` arguments for chart with the given
// values files and --set flags.
func templateArgs(chart string, valuesFiles []string, sets ...string) []string {
	args := []string{"template", releaseName, chart, "--namespace", releaseNS, "--kube-version", kubeVersion}
	for _, f := range valuesFiles {
		args = append(args, "-f", f)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// render runs helm template and strict-decodes every object it prints.
func render(t testing.TB, chart string, valuesFiles []string, sets ...string) []object {
	t.Helper()
	out, err := runHelm(t, templateArgs(chart, valuesFiles, sets...)...)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, doc := range docs {
		obj, gvk, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("%s: strict decode: %v\n%s", sourceOf(doc), err, doc)
		}
		objs = append(objs, object{Source: sourceOf(doc), GVK: *gvk, Obj: obj, Raw: doc})
	}
	return objs
}

// ofType returns the rendered objects of type T.
func ofType[T runtime.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// checkPromtool writes the PrometheusRule's groups as a rule file and has
// promtool check it: the rules Prometheus will load are valid.
func checkPromtool(t *testing.T, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		const msg = "promtool not found (Debian package prometheus)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Log(msg + "; rule syntax not checked")
		return
	}
	b, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), pr.Name+".rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on PrometheusRule %s: %v\n%s\n%s", pr.Name, err, out, b)
	}
}

// BenchmarkHelmTemplate measures one `helm template` of the all-on values
// (what `helm install` renders before it talks to the cluster).
func BenchmarkHelmTemplate(b *testing.B) {
	var objects int
	for b.Loop() {
		out, err := runHelm(b, templateArgs(chartDir, []string{allOnValues})...)
		if err != nil {
			b.Fatal(err)
		}
		docs, err := splitDocuments(out)
		if err != nil {
			b.Fatal(err)
		}
		objects = len(docs)
	}
	b.ReportMetric(float64(objects), "objects/render")
}
