package charts_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/stackwatch/stackwatch/charts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// valueSets are the renders every structural test checks.
var valueSets = []struct {
	name  string
	files []string
}{
	{"defaults", nil},
	{"all-on", []string{allOnValues}},
}

// --- one source for rules and dashboards -------------------------------------

func TestChartFilesInSync(t *testing.T) {
	changes, err := charts.Drift("..", chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) > 0 {
		t.Fatalf("the chart's copies of alerts/ and dashboards/ drifted; run `go generate ./charts`:\n%v", changes)
	}
}

func TestSyncCreatesUpdatesAndPrunes(t *testing.T) {
	repo, chart := t.TempDir(), t.TempDir()
	write(t, filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: x\nversion: 0.1.0\n")
	write(t, filepath.Join(repo, "alerts", "a.rules.yml"), "groups: []\n")
	write(t, filepath.Join(repo, "alerts", "alertmanager.yml"), "route: {}\n") // not a rule file
	write(t, filepath.Join(repo, "dashboards", "d.json"), `{"title":"d"}`)
	write(t, filepath.Join(chart, "files", "dashboards", "d.json"), `{"title":"old"}`)
	write(t, filepath.Join(chart, "files", "alerts", "gone.rules.yml"), "groups: []\n")

	want := []string{"create files/alerts/a.rules.yml", "delete files/alerts/gone.rules.yml", "update files/dashboards/d.json"}
	drift, err := charts.Drift(repo, chart)
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(drift); !slices.Equal(got, want) {
		t.Fatalf("Drift = %q, want %q", got, want)
	}
	changed, err := charts.Sync(repo, chart)
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(changed); !slices.Equal(got, want) {
		t.Fatalf("Sync = %q, want %q", got, want)
	}
	if drift, _ := charts.Drift(repo, chart); len(drift) != 0 {
		t.Fatalf("drift after Sync: %v", drift)
	}
	for rel, content := range map[string]string{
		"files/alerts/a.rules.yml": "groups: []\n",
		"files/dashboards/d.json":  `{"title":"d"}`,
	} {
		if b, err := os.ReadFile(filepath.Join(chart, rel)); err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, content)
		}
	}
	for _, rel := range []string{"files/alerts/gone.rules.yml", "files/alerts/alertmanager.yml"} {
		if _, err := os.Stat(filepath.Join(chart, rel)); !os.IsNotExist(err) {
			t.Errorf("%s exists after Sync (err %v)", rel, err)
		}
	}
	if _, err := charts.Drift(repo, t.TempDir()); err == nil {
		t.Error("Drift into a directory without Chart.yaml succeeded")
	}
}

// --- lint and strict decoding ------------------------------------------------

func TestLintStrict(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir, "--namespace", releaseNS, "--kube-version", kubeVersion}
			for _, f := range vs.files {
				args = append(args, "-f", f)
			}
			if out, err := runHelm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestStrictDecoderRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n",
		"wrong case":       "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {Type: ClusterIP}\n",
		"duplicate field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n",
		"unknown kind":     "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n",
		"unknown CRD kind": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitorz\nmetadata: {name: x}\n",
		"bad CRD field":    "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec: {selector: {}, podMetricsEndpoints: [{port: a, honourLabels: true}]}\n",
		"wrong type":       "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: two}\n",
	} {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, _, err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP}\n")); err != nil {
		t.Errorf("valid Service: %v", err)
	}
}

// TestRenderedObjects checks kinds, counts, names and labels of both renders.
// Counts follow from the values: one StatefulSet, two Services and one PDB per
// enabled service; monitoring objects only when switched on; one
// PrometheusRule per alerts/*.rules.yml and one ConfigMap per dashboards/*.json.
func TestRenderedObjects(t *testing.T) {
	rules, dashboards := sourceFiles(t, "../alerts/*.rules.yml"), sourceFiles(t, "../dashboards/*.json")
	for _, tc := range []struct {
		name  string
		files []string
		want  map[string]int
	}{
		{"defaults", nil, map[string]int{
			"StatefulSet": 3, "Service": 6, "PodDisruptionBudget": 3, "Secret": 2, "ServiceAccount": 1,
		}},
		{"all-on", []string{allOnValues}, map[string]int{
			"StatefulSet": 4, "Service": 8, "PodDisruptionBudget": 4, "Secret": 2, "ServiceAccount": 1,
			"NetworkPolicy": 1, "PodMonitor": 2, "PrometheusRule": len(rules), "ConfigMap": len(dashboards),
			"AlertmanagerConfig": 1,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, chartDir, tc.files)
			got := map[string]int{}
			seen := map[string]bool{}
			for _, o := range objs {
				got[o.GVK.Kind]++
				meta := o.Obj.(metav1.Object)
				id := o.GVK.Kind + "/" + meta.GetNamespace() + "/" + meta.GetName()
				if seen[id] {
					t.Errorf("%s rendered twice", id)
				}
				seen[id] = true
				checkMeta(t, o, meta)
			}
			maps.DeleteFunc(got, func(_ string, n int) bool { return n == 0 })
			maps.DeleteFunc(tc.want, func(_ string, n int) bool { return n == 0 })
			if !maps.Equal(got, tc.want) {
				t.Errorf("rendered kinds = %v, want %v", got, tc.want)
			}
			t.Logf("%s: %d objects %v", tc.name, len(objs), got)
		})
	}
}

func checkMeta(t *testing.T, o object, meta metav1.Object) {
	t.Helper()
	name := meta.GetName()
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		t.Errorf("%s %q: %v", o.GVK.Kind, name, errs)
	}
	switch o.GVK.Kind {
	case "Service":
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			t.Errorf("Service %q: %v", name, errs)
		}
	case "StatefulSet":
		// The controller-revision-hash label value is the name plus an
		// 11-character hash and must fit in 63 characters.
		if len(name) > 52 {
			t.Errorf("StatefulSet name %q is longer than 52 characters", name)
		}
	}
	if meta.GetNamespace() == "" {
		t.Errorf("%s %q has no namespace", o.GVK.Kind, name)
	}
	for k, v := range meta.GetLabels() {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("%s %q label key %q: %v", o.GVK.Kind, name, k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("%s %q label %s=%q: %v", o.GVK.Kind, name, k, v, errs)
		}
	}
}

// --- workloads -----------------------------------------------------------------

func TestPodsRunGameServerAndSidecar(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, chartDir, vs.files)
			sets := ofType[*appsv1.StatefulSet](objs)
			if len(sets) == 0 {
				t.Fatal("no StatefulSets rendered")
			}
			for _, sts := range sets {
				t.Run(sts.Name, func(t *testing.T) { checkStatefulSet(t, sts) })
			}
		})
	}
}

func checkStatefulSet(t *testing.T, sts *appsv1.StatefulSet) {
	pod := sts.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the pod template labels %v (err %v)", sts.Spec.Selector, sts.Spec.Template.Labels, err)
	}
	if sts.Spec.ServiceName == "" {
		t.Error("no governing serviceName")
	}
	if len(pod.Containers) != 2 {
		t.Fatalf("pod has %d containers, want gameserver and sidecar", len(pod.Containers))
	}
	gs, sc := container(pod, "gameserver"), container(pod, "sidecar")
	if gs == nil || sc == nil {
		t.Fatalf("containers %v, want gameserver and sidecar", []string{pod.Containers[0].Name, pod.Containers[1].Name})
	}

	// The shared stacktrace directory: one emptyDir mounted in both
	// containers at the directory both are told to use.
	logDir := flagValue(t, gs, "log-dir")
	if got := flagValue(t, sc, "log-dir"); got != logDir {
		t.Errorf("sidecar -log-dir=%s, game server -log-dir=%s", got, logDir)
	}
	gsLog, scLog := mountAt(gs, logDir), mountAt(sc, logDir)
	if gsLog == nil || scLog == nil {
		t.Fatalf("log dir %s not mounted in both containers", logDir)
	}
	if gsLog.Name != scLog.Name || gsLog.SubPath != "" || scLog.SubPath != "" || gsLog.ReadOnly {
		t.Errorf("log mounts differ or are restricted: %+v vs %+v", gsLog, scLog)
	}
	if v := volume(pod, gsLog.Name); v == nil || v.EmptyDir == nil {
		t.Errorf("log volume %q is not an emptyDir: %+v", gsLog.Name, v)
	}

	// The durable store: on a PVC from volumeClaimTemplates when persistence
	// is on (the chart's default).
	dataDir := flagValue(t, gs, "data-dir")
	dm := mountAt(gs, dataDir)
	if dm == nil {
		t.Fatalf("data dir %s not mounted", dataDir)
	}
	if !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == dm.Name }) {
		t.Errorf("data dir %s is on volume %q, not on a PVC template", dataDir, dm.Name)
	}
	if sm := mountAt(sc, flagValue(t, sc, "data-dir")); sm == nil || sm.Name == dm.Name {
		t.Errorf("sidecar data dir must be mounted and separate from the wallet volume: %+v", sm)
	}

	// The sidecar scrapes pprof over localhost; the server serves pprof on
	// loopback only, never on the pod-wide admin port.
	admin := port(gs, "admin")
	if admin == nil || port(gs, "game") == nil || port(sc, "sidecar") == nil {
		t.Fatal("missing named ports game/admin (gameserver) or sidecar (sidecar)")
	}
	pprofAddr := flagValue(t, gs, "pprof")
	if !strings.HasPrefix(pprofAddr, "127.0.0.1:") || pprofAddr == fmt.Sprintf("127.0.0.1:%d", admin.ContainerPort) {
		t.Errorf("game server -pprof=%s: want a loopback port of its own", pprofAddr)
	}
	if got, want := flagValue(t, sc, "target"), "http://"+pprofAddr; got != want {
		t.Errorf("sidecar -target=%s, want %s", got, want)
	}
	if got := flagValue(t, gs, "admin"); got != fmt.Sprintf(":%d", admin.ContainerPort) {
		t.Errorf("game server -admin=%s does not listen on the admin port %d", got, admin.ContainerPort)
	}
	if !strings.HasPrefix(flagValue(t, sc, "token-file"), "/") {
		t.Error("sidecar has no -token-file")
	}
	for _, c := range []*corev1.Container{gs, sc} {
		checkContainer(t, pod, c)
		for _, m := range c.VolumeMounts {
			if volume(pod, m.Name) == nil && !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates,
				func(p corev1.PersistentVolumeClaim) bool { return p.Name == m.Name }) {
				t.Errorf("%s mounts %q, which is neither a volume nor a claim template", c.Name, m.Name)
			}
		}
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}
}

func checkContainer(t *testing.T, pod corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", c.Name, name)
			continue
		}
		if p.HTTPGet.Port.StrVal == "" || port(c, p.HTTPGet.Port.StrVal) == nil {
			t.Errorf("%s: %s probe targets %v, not a named port of this container", c.Name, name, p.HTTPGet.Port)
		}
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
		t.Errorf("%s: requests %v, want cpu and memory", c.Name, r.Requests)
	}
	if r.Limits.Memory().IsZero() || r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
		t.Errorf("%s: memory limit %v missing or below the request %v", c.Name, r.Limits.Memory(), r.Requests.Memory())
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no securityContext", c.Name)
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod.SecurityContext != nil {
		nonRoot = pod.SecurityContext.RunAsNonRoot
	}
	switch {
	case nonRoot == nil || !*nonRoot:
		t.Errorf("%s: not runAsNonRoot", c.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem writable", c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: privilege escalation allowed", c.Name)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s: privileged", c.Name)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want drop [ALL] and no adds", c.Name, sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp %+v, want RuntimeDefault", c.Name, sc.SeccompProfile)
	}
}

func TestReplicasFollowValues(t *testing.T) {
	objs := render(t, chartDir, []string{allOnValues}, "services.forestteaparty.replicas=0")
	want := map[string]int32{"goldenclover": 2, "goldenclover-eu": 1, "wilddiggr": 3, "forestteaparty": 0}
	got := map[string]int32{}
	for _, sts := range ofType[*appsv1.StatefulSet](objs) {
		got[sts.Spec.Template.Labels["stackwatch.io/service"]] = *sts.Spec.Replicas
	}
	if !maps.Equal(got, want) {
		t.Errorf("replicas %v, want %v (disabled-game must not render)", got, want)
	}
}

func TestServicesExposeOnlyTheGamePort(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, chartDir, vs.files)
			sets := ofType[*appsv1.StatefulSet](objs)
			services := ofType[*corev1.Service](objs)
			governing := map[string]bool{}
			for _, sts := range sets {
				governing[sts.Spec.ServiceName] = false
			}
			for _, svc := range services {
				var selected []*appsv1.StatefulSet
				for _, sts := range sets {
					if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
						selected = append(selected, sts)
					}
				}
				if len(svc.Spec.Selector) == 0 || len(selected) != 1 {
					t.Errorf("Service %s selects %d StatefulSets, want exactly 1", svc.Name, len(selected))
					continue
				}
				gs := container(selected[0].Spec.Template.Spec, "gameserver")
				for _, p := range svc.Spec.Ports {
					if p.TargetPort.StrVal != "game" || int(p.Port) != int(port(gs, "game").ContainerPort) {
						t.Errorf("Service %s exposes port %+v; only the game port may be in a Service", svc.Name, p)
					}
				}
				if _, ok := governing[svc.Name]; ok {
					governing[svc.Name] = svc.Spec.ClusterIP == corev1.ClusterIPNone
				}
			}
			for name, headless := range governing {
				if !headless {
					t.Errorf("governing Service %s missing or not headless", name)
				}
			}
		})
	}
}

func TestDisruptionBudgets(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, chartDir, vs.files)
			pdbs := ofType[*policyv1.PodDisruptionBudget](objs)
			for _, sts := range ofType[*appsv1.StatefulSet](objs) {
				n := 0
				for _, pdb := range pdbs {
					sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
					if err != nil {
						t.Fatal(err)
					}
					if !sel.Empty() && sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
						n++
						if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
							t.Errorf("PDB %s: want exactly one of maxUnavailable/minAvailable", pdb.Name)
						}
					}
				}
				if n != 1 {
					t.Errorf("StatefulSet %s is covered by %d PDBs, want 1", sts.Name, n)
				}
			}
		})
	}
}

func TestNetworkPolicyAdmitsOnlyPrometheusToSidecarAndAdmin(t *testing.T) {
	objs := render(t, chartDir, []string{allOnValues})
	nps := ofType[*networkingv1.NetworkPolicy](objs)
	if len(nps) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(nps))
	}
	np := nps[0]
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, sts := range ofType[*appsv1.StatefulSet](objs) {
		if !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			t.Errorf("NetworkPolicy does not select %s", sts.Name)
		}
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes = %v", np.Spec.PolicyTypes)
	}
	for _, rule := range np.Spec.Ingress {
		var ports []string
		for _, p := range rule.Ports {
			ports = append(ports, p.Port.String())
		}
		if slices.Contains(ports, "sidecar") || slices.Contains(ports, "admin") {
			if len(rule.From) != 1 || rule.From[0].PodSelector == nil || rule.From[0].NamespaceSelector == nil ||
				rule.From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
				t.Errorf("sidecar/admin ports open to %+v, want only Prometheus", rule.From)
			}
			if slices.Contains(ports, "game") {
				t.Error("game port shares a rule with the sidecar/admin ports")
			}
		}
	}
}

// --- monitoring ------------------------------------------------------------------

func TestPodMonitorsScrapeServerAndSidecar(t *testing.T) {
	objs := render(t, chartDir, []string{allOnValues})
	pms := ofType[*monitoringv1.PodMonitor](objs)
	sets := ofType[*appsv1.StatefulSet](objs)
	rules := ofType[*monitoringv1.PrometheusRule](objs)
	ports := map[string]string{} // endpoint port -> job label
	for _, pm := range pms {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if pm.Namespace != releaseNS && !slices.Contains(pm.Spec.NamespaceSelector.MatchNames, releaseNS) {
			t.Errorf("PodMonitor %s in %s does not look into %s", pm.Name, pm.Namespace, releaseNS)
		}
		for _, sts := range sets {
			if !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
				t.Errorf("PodMonitor %s does not select %s", pm.Name, sts.Name)
			}
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || ep.Path != "/metrics" {
				t.Errorf("PodMonitor %s endpoint %+v: want a named port and /metrics", pm.Name, ep)
				continue
			}
			// service is a target label: with honorLabels a pod could
			// override job, namespace and service.
			if ep.HonorLabels {
				t.Errorf("PodMonitor %s endpoint %s: honorLabels is on", pm.Name, *ep.Port)
			}
			var job, serviceFrom string
			for _, r := range ep.RelabelConfigs {
				switch r.TargetLabel {
				case "job":
					job = *r.Replacement
				case "service":
					serviceFrom = string(r.SourceLabels[0])
				}
			}
			ports[*ep.Port] = job
			// Every series, up{} included, gets service from the pod label it names.
			for _, sts := range sets {
				key, ok := podLabelFromMeta(serviceFrom, sts.Spec.Template.Labels)
				if !ok || sts.Spec.Template.Labels[key] == "" {
					t.Errorf("PodMonitor %s copies service from %q, which is no label of %s", pm.Name, serviceFrom, sts.Name)
				}
			}
		}
	}
	if len(ports) != 2 || ports["admin"] == "" || ports["sidecar"] == "" {
		t.Fatalf("scraped ports/jobs %v, want admin and sidecar, each with a job", ports)
	}
	// The target-down alerts match up{job=~...}: each regex must match the
	// job of a PodMonitor, or the alert could never fire on Kubernetes.
	upRe := regexp.MustCompile(`\bup\{[^}]*job=~?"([^"]*)"`)
	matched := map[string]bool{}
	for _, pr := range rules {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				for _, m := range upRe.FindAllStringSubmatch(r.Expr.String(), -1) {
					re := regexp.MustCompile("^(?:" + m[1] + ")$")
					ok := false
					for _, job := range ports {
						if re.MatchString(job) {
							ok, matched[job] = true, true
						}
					}
					if !ok {
						t.Errorf("rule %s matches up{job=~%q}, which no PodMonitor job (%v) matches", r.Alert, m[1], ports)
					}
				}
			}
		}
	}
	if len(rules) > 0 && len(matched) == 0 {
		t.Log("no up{job=...} rule in alerts/: the jobs are not cross-checked")
	}
}

// TestPodMonitorBearerToken: with sidecarBearerToken the sidecar endpoint
// sends the very token the sidecar reads, and only the sidecar endpoint.
func TestPodMonitorBearerToken(t *testing.T) {
	objs := render(t, chartDir, nil, "metrics.podMonitor.enabled=true", "metrics.podMonitor.sidecarBearerToken=true")
	sts := ofType[*appsv1.StatefulSet](objs)[0]
	pod := sts.Spec.Template.Spec
	sc := container(pod, "sidecar")
	tokenFile := flagValue(t, sc, "token-file")
	m := mountAt(sc, filepath.Dir(tokenFile))
	if m == nil || volume(pod, m.Name) == nil || volume(pod, m.Name).Secret == nil {
		t.Fatalf("token file %s is not on a Secret volume", tokenFile)
	}
	secret := volume(pod, m.Name).Secret
	n := 0
	for _, pm := range ofType[*monitoringv1.PodMonitor](objs) {
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			a := ep.Authorization
			if *ep.Port != "sidecar" {
				if a != nil {
					t.Errorf("endpoint %s sends a token", *ep.Port)
				}
				continue
			}
			n++
			if a == nil || a.Type != "Bearer" || a.Credentials == nil || a.Credentials.Name != secret.SecretName ||
				a.Credentials.Key != filepath.Base(tokenFile) {
				t.Errorf("sidecar endpoint authorization %+v, want Bearer from Secret %s key %s", a, secret.SecretName, filepath.Base(tokenFile))
			}
		}
	}
	if n != 1 {
		t.Errorf("%d sidecar endpoints, want 1", n)
	}
	if _, err := runHelm(t, templateArgs(chartDir, []string{allOnValues}, "metrics.podMonitor.sidecarBearerToken=true")...); err == nil ||
		!strings.Contains(err.Error(), "must be in the release namespace") {
		t.Errorf("PodMonitor in another namespace with a token: err %v", err)
	}
}

// podLabelFromMeta maps __meta_kubernetes_pod_label_<sanitized> back to the
// pod label it comes from.
func podLabelFromMeta(meta string, podLabels map[string]string) (string, bool) {
	s, ok := strings.CutPrefix(meta, "__meta_kubernetes_pod_label_")
	if !ok {
		return "", false
	}
	for k := range podLabels {
		if regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(k, "_") == s {
			return k, true
		}
	}
	return "", false
}

// TestPrometheusRulesHoldExactlyAlerts proves the rendered PrometheusRules
// carry the rules of alerts/*.rules.yml, each file whole and nothing else,
// with their {{ $labels }} templating intact, and that promtool accepts them.
func TestPrometheusRulesHoldExactlyAlerts(t *testing.T) {
	t.Run("as-is", func(t *testing.T) {
		objs := render(t, chartDir, nil, "metrics.prometheusRule.enabled=true")
		checkRulesMatch(t, objs, "..", nil)
	})
	// all-on adds additionalRuleLabels and, for the AlertmanagerConfig, the
	// namespace label to alerting rules, and nothing else.
	t.Run("all-on", func(t *testing.T) {
		objs := render(t, chartDir, []string{allOnValues})
		checkRulesMatch(t, objs, "..", map[string]string{"team": "games", "namespace": releaseNS})
	})
}

// TestDashboardConfigMapsHoldExactlyDashboards proves the ConfigMaps carry
// dashboards/*.json byte for byte, one each, labelled for the Grafana sidecar.
func TestDashboardConfigMapsHoldExactlyDashboards(t *testing.T) {
	objs := render(t, chartDir, []string{allOnValues})
	checkDashboardsMatch(t, objs, "..")
}

// TestTemplatingSurvivesHelm runs the whole pipeline — Sync, helm template,
// decode — on a copy of the chart fed with fixture rules and dashboards full
// of the template syntax Helm must leave alone, so the guarantee holds
// whatever alerts/ and dashboards/ contain today.
func TestTemplatingSurvivesHelm(t *testing.T) {
	repo := t.TempDir()
	write(t, filepath.Join(repo, "alerts", "fixture.rules.yml"), `groups:
  - name: fixture
    interval: 30s
    rules:
      - record: service:nil_session_attempts:rate5m
        expr: sum by (service) (rate(nil_session_attempts_total[5m]))
      - alert: FixtureAlert
        expr: |
          sum by (service) (rate(nil_session_attempts_total[5m])) * 60
            > 10
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: critical
          team: "{{ $labels.service }}-oncall"
        annotations:
          summary: 'Quotes '' and "double" and {{ "{{" }} braces'
          description: >-
            {{ $labels.service }} is at {{ $value | humanize }}/min
            ({{ with query "up" }}{{ . | first | value }}{{ end }}) <b>&amp;</b>
          runbook_url: https://example.com/{{ $labels.alertname }}
  - name: fixture.other
    rules:
      - alert: Second
        expr: vector(1)
`)
	write(t, filepath.Join(repo, "alerts", "more.rules.yml"), "groups:\n  - name: more\n    rules:\n      - alert: More\n        expr: vector(0) > 1\n")
	write(t, filepath.Join(repo, "dashboards", "fixture.json"),
		"{\n  \"title\": \"Fixture ünïcode ✓\",\n  \"panels\": [{\"targets\": [{\"expr\": \"sum by (service) (rate(x[5m]))\", \"legendFormat\": \"{{service}} {{ .Values.nope }}\"}]}],\n  \"html\": \"<b>&</b>\\n\\t\\u2028\",\n  \"trailing\": \"  \"   \n}")
	write(t, filepath.Join(repo, "dashboards", "second.json"), "{\"title\":\"second\"}\n\n")

	chart := filepath.Join(t.TempDir(), chartDir)
	copyDir(t, chartDir, chart)
	if _, err := charts.Sync(repo, chart); err != nil {
		t.Fatal(err)
	}
	objs := render(t, chart, []string{allOnValues})
	if n := len(ofType[*monitoringv1.PrometheusRule](objs)); n != 2 {
		t.Fatalf("%d PrometheusRules from 2 fixture files", n)
	}
	checkRulesMatch(t, objs, repo, map[string]string{"team": "games", "namespace": releaseNS})
	checkDashboardsMatch(t, objs, repo)
	for _, pr := range ofType[*monitoringv1.PrometheusRule](objs) {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "FixtureAlert" && !strings.Contains(r.Annotations["description"], "{{ $labels.service }} is at {{ $value | humanize }}/min") {
					t.Errorf("description lost its templating: %q", r.Annotations["description"])
				}
			}
		}
	}
}

// checkRulesMatch compares the rendered PrometheusRules with the rule files
// of repo/alerts, after adding extra to the labels of every alerting rule
// that lacks them (the chart's additionalRuleLabels).
func checkRulesMatch(t *testing.T, objs []object, repo string, extra map[string]string) {
	t.Helper()
	want := map[string]monitoringv1.PrometheusRuleSpec{}
	for _, path := range sourceFiles(t, filepath.Join(repo, "alerts", "*.rules.yml")) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The source must fit the CRD as it is: strict, no unknown fields.
		var spec monitoringv1.PrometheusRuleSpec
		if err := yaml.UnmarshalStrict(b, &spec); err != nil {
			t.Fatalf("%s does not fit a PrometheusRule spec: %v", path, err)
		}
		for _, g := range spec.Groups {
			for i := range g.Rules {
				r := &g.Rules[i]
				if r.Alert == "" || len(extra) == 0 {
					continue
				}
				if r.Labels == nil {
					r.Labels = map[string]string{}
				}
				for k, v := range extra {
					if _, ok := r.Labels[k]; !ok {
						r.Labels[k] = v
					}
				}
			}
		}
		want["alerts/"+filepath.Base(path)] = spec
	}
	got := map[string]monitoringv1.PrometheusRuleSpec{}
	for _, pr := range ofType[*monitoringv1.PrometheusRule](objs) {
		src := pr.Annotations["stackwatch.io/source"]
		if _, dup := got[src]; dup || src == "" {
			t.Errorf("PrometheusRule %s: source annotation %q missing or repeated", pr.Name, src)
		}
		got[src] = pr.Spec
		checkPromtool(t, pr)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("PrometheusRules from %v, want one per file %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for src, w := range want {
		if !reflect.DeepEqual(got[src], w) {
			gb, _ := yaml.Marshal(got[src])
			wb, _ := yaml.Marshal(w)
			t.Errorf("PrometheusRule from %s differs from the file:\n--- rendered\n%s\n--- %s\n%s", src, gb, src, wb)
		}
	}
}

func checkDashboardsMatch(t *testing.T, objs []object, repo string) {
	t.Helper()
	want := map[string][]byte{}
	for _, path := range sourceFiles(t, filepath.Join(repo, "dashboards", "*.json")) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Base(path)] = b
	}
	got := map[string][]byte{}
	for _, cm := range ofType[*corev1.ConfigMap](objs) {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("ConfigMap %s lacks grafana_dashboard: \"1\"", cm.Name)
		}
		if len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
			t.Errorf("ConfigMap %s holds %d entries, want one dashboard", cm.Name, len(cm.Data)+len(cm.BinaryData))
		}
		for k, v := range cm.Data {
			if _, dup := got[k]; dup {
				t.Errorf("dashboard %s in two ConfigMaps", k)
			}
			got[k] = []byte(v)
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("dashboard ConfigMaps hold %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, w := range want {
		if g := got[k]; string(g) != string(w) {
			i := 0
			for i < len(g) && i < len(w) && g[i] == w[i] {
				i++
			}
			t.Errorf("ConfigMap copy of %s (%d bytes) differs from the file (%d bytes) at byte %d: got %q, want %q",
				k, len(g), len(w), i, excerpt(g, i), excerpt(w, i))
		}
	}
}

func TestAlertmanagerConfigRoutesPages(t *testing.T) {
	objs := render(t, chartDir, []string{allOnValues})
	amcs := ofType[*monitoringv1alpha1.AlertmanagerConfig](objs)
	if len(amcs) != 1 {
		t.Fatalf("%d AlertmanagerConfigs, want 1", len(amcs))
	}
	spec := amcs[0].Spec
	receivers := map[string]monitoringv1alpha1.Receiver{}
	for _, r := range spec.Receivers {
		receivers[r.Name] = r
	}
	route := map[string]string{} // severity -> receiver
	for _, raw := range spec.Route.Routes {
		var r monitoringv1alpha1.Route
		if err := yaml.UnmarshalStrict(raw.Raw, &r); err != nil {
			t.Fatalf("child route: %v", err)
		}
		for _, m := range r.Matchers {
			if m.Name == "severity" && m.MatchType == monitoringv1alpha1.MatchEqual {
				route[m.Value] = r.Receiver
			}
		}
		if _, ok := receivers[r.Receiver]; !ok {
			t.Errorf("route to undefined receiver %q", r.Receiver)
		}
	}
	if route["critical"] != "pager" || route["warning"] != "ops" {
		t.Errorf("severity routes %v, want critical→pager, warning→ops", route)
	}
	pager := receivers["pager"]
	if len(pager.WebhookConfigs) != 1 || pager.WebhookConfigs[0].URLSecret == nil || len(pager.PagerDutyConfigs) != 1 {
		t.Errorf("pager receiver %+v, want the webhook (URL from a Secret) and PagerDuty", pager)
	}
	if !slices.Contains(spec.Route.GroupBy, "service") || !slices.Contains(spec.Route.GroupBy, "alertname") {
		t.Errorf("groupBy %v, want alertname and service", spec.Route.GroupBy)
	}
	if len(spec.InhibitRules) != 1 || !slices.Equal(spec.InhibitRules[0].Equal, []string{"service"}) {
		t.Errorf("inhibit rules %+v, want warnings muted per service while critical fires", spec.InhibitRules)
	}
	// The operator routes to an AlertmanagerConfig only alerts labelled with
	// its namespace: every alert must carry it.
	n := 0
	for _, pr := range ofType[*monitoringv1.PrometheusRule](objs) {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					n++
					if r.Labels["namespace"] != amcs[0].Namespace {
						t.Errorf("alert %s has namespace %q; the AlertmanagerConfig in %s would never see it", r.Alert, r.Labels["namespace"], amcs[0].Namespace)
					}
				}
			}
		}
	}
	t.Logf("%d alerting rules carry namespace=%s", n, amcs[0].Namespace)
}

// TestBadValuesFailClearly: a mistake in values stops the render with a
// message naming the value, instead of producing a broken release. The
// values schema catches most; the templates' own checks stand behind it for
// renders that skip schema validation.
func TestBadValuesFailClearly(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"services.wilddiggr.game=wildig"}, "value must be one of 'goldenclover', 'wilddig', 'forestteaparty'"},
		{[]string{"metrics.podmonitor.enabled=true"}, "additional properties 'podmonitor' not allowed"},
		{[]string{"services.Bad_Name.game=wilddig"}, "'Bad_Name' does not match pattern"},
		{[]string{"gameserver.persistence.size=lots"}, "'lots' does not match pattern"},
		{[]string{"services.goldenclover.replicas=-1"}, "/services/goldenclover/replicas"},
		{[]string{"alertmanagerConfig.enabled=true"}, "alertmanagerConfig.pager: set"},
		{[]string{"networkPolicy.enabled=true", "networkPolicy.prometheus.namespaceSelector=null", "networkPolicy.prometheus.podSelector=null"}, "networkPolicy.prometheus"},
		{[]string{"podDisruptionBudget.minAvailable=1"}, "not both"},
		// Behind the schema:
		{[]string{"services.wilddiggr.game=wildig", "--skip-schema-validation"}, "services.wilddiggr.game must be goldenclover, wilddig or forestteaparty"},
		{[]string{"services.Bad_Name.game=wilddig", "--skip-schema-validation"}, "services.Bad_Name: the service name must be a DNS label"},
	} {
		var sets, flags []string
		for _, s := range tc.sets {
			if strings.HasPrefix(s, "--") {
				flags = append(flags, s)
			} else {
				sets = append(sets, s)
			}
		}
		out, err := runHelm(t, append(templateArgs(chartDir, nil, sets...), flags...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v (output %d bytes), want an error containing %q", tc.sets, err, len(out), tc.want)
		}
	}
}

// --- helpers -----------------------------------------------------------------------

func container(pod corev1.PodSpec, name string) *corev1.Container {
	for i := range pod.Containers {
		if pod.Containers[i].Name == name {
			return &pod.Containers[i]
		}
	}
	return nil
}

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func mountAt(c *corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if filepath.Clean(c.VolumeMounts[i].MountPath) == filepath.Clean(path) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func port(c *corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

// flagValue returns the value of -name=value in the container's args.
func flagValue(t *testing.T, c *corev1.Container, name string) string {
	t.Helper()
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("%s: no -%s=... in args %q", c.Name, name, c.Args)
	return ""
}

// excerpt returns up to 40 bytes of b around offset i.
func excerpt(b []byte, i int) string {
	lo, hi := max(0, i-20), min(len(b), i+20)
	return string(b[lo:hi])
}

func sourceFiles(t *testing.T, glob string) []string {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the chart, leaving out its files/ mirrors (the test fills them).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel == "files" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// TestRunbookBaseURL: the runbookBaseURL value prefixes every alert's
// runbook_url and every dashboard panel's runbook link, and nothing else.
func TestRunbookBaseURL(t *testing.T) {
	const base = "https://git.example.com/games/stackwatch/-/blob/main"
	objs := render(t, chartDir, nil, "metrics.prometheusRule.enabled=true", "dashboards.enabled=true", "runbookBaseURL="+base+"/")
	alerts := 0
	for _, pr := range ofType[*monitoringv1.PrometheusRule](objs) {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts++
				if want := base + "/docs/runbooks/" + r.Alert + ".md"; r.Annotations["runbook_url"] != want {
					t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
				}
			}
		}
	}
	links := 0
	for _, cm := range ofType[*corev1.ConfigMap](objs) {
		for name, data := range cm.Data {
			var d struct {
				Panels []struct {
					Title string `json:"title"`
					Links []struct {
						Title string `json:"title"`
						URL   string `json:"url"`
					} `json:"links"`
				} `json:"panels"`
			}
			if err := yaml.Unmarshal([]byte(data), &d); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, p := range d.Panels {
				for _, l := range p.Links {
					if alert, ok := strings.CutPrefix(l.Title, "Runbook: "); ok {
						links++
						if want := base + "/docs/runbooks/" + alert + ".md"; l.URL != want {
							t.Errorf("%s %q: runbook link %q, want %q", name, p.Title, l.URL, want)
						}
					}
				}
			}
		}
	}
	if alerts == 0 || links == 0 {
		t.Fatalf("%d alerts and %d panel runbook links rendered", alerts, links)
	}
}
