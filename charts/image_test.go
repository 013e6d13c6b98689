package charts_test

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/stackwatch/stackwatch/internal/proctest"
)

// Docker cannot run here, so these tests hold the Dockerfile to the chart:
// the images the chart names are targets of the Dockerfile, the user and
// ports agree, and the Dockerfile's own `go build` commands, run as written,
// give static binaries that start with exactly the arguments the chart
// renders.

const dockerfilePath = "../Dockerfile"

// dockerfile is the little of a Dockerfile these tests need.
type dockerfile struct {
	args   map[string]string // ARG defaults, global and per stage
	stages []*stage
}

type stage struct {
	name, from string
	env        []string // ENV of this stage and the stages it is built FROM
	instrs     []instr
}

type instr struct{ cmd, rest string }

func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	df := &dockerfile{args: map[string]string{}}
	byName := map[string]*stage{}
	var cur *stage
	var logical string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if trimmed := strings.TrimSpace(line); logical == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			logical += s + " "
			continue
		}
		logical += line
		cmd, rest, _ := strings.Cut(strings.TrimSpace(logical), " ")
		logical = ""
		cmd, rest = strings.ToUpper(cmd), strings.TrimSpace(rest)
		switch cmd {
		case "FROM":
			f := strings.Fields(rest)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			cur = &stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.name = f[2]
			}
			if base, ok := byName[cur.from]; ok {
				cur.env = slices.Clone(base.env)
			}
			byName[cur.name] = cur
			df.stages = append(df.stages, cur)
			continue
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			if _, seen := df.args[k]; !seen || v != "" {
				df.args[k] = v
			}
		case "ENV":
			cur.env = append(cur.env, strings.Fields(rest)...)
		}
		if cur != nil {
			cur.instrs = append(cur.instrs, instr{cmd, rest})
		}
	}
	return df
}

func (df *dockerfile) stage(name string) *stage {
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (s *stage) last(cmd string) string {
	out := ""
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = in.rest
		}
	}
	return out
}

// expand substitutes $VAR and ${VAR} from the ARG defaults.
func (df *dockerfile) expand(s string) string {
	return os.Expand(s, func(k string) string { return df.args[k] })
}

// shellWords splits a command line on blanks, honouring double quotes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// binaries maps each image target to the binary its ENTRYPOINT runs and the
// stage that builds it.
func (df *dockerfile) binaries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, target := range []string{"gameserver", "sidecar", "loadgen"} {
		s := df.stage(target)
		if s == nil {
			t.Errorf("Dockerfile has no %q target", target)
			continue
		}
		var ep []string
		if err := json.Unmarshal([]byte(s.last("ENTRYPOINT")), &ep); err != nil || len(ep) == 0 {
			t.Errorf("target %s: ENTRYPOINT %q is not an exec-form array", target, s.last("ENTRYPOINT"))
			continue
		}
		copied := false
		for _, in := range s.instrs {
			if in.cmd == "COPY" && strings.HasSuffix(in.rest, " "+ep[0]) {
				copied = true
			}
		}
		if !copied {
			t.Errorf("target %s: nothing is copied to its ENTRYPOINT %s", target, ep[0])
		}
		out[target] = ep[0]
	}
	return out
}

func TestDockerfileMatchesChart(t *testing.T) {
	df := parseDockerfile(t)
	df.binaries(t)

	// Every command in cmd/ has an image.
	cmds, err := filepath.Glob("../cmd/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if df.stage(filepath.Base(c)) == nil {
			t.Errorf("cmd/%s has no Dockerfile target", filepath.Base(c))
		}
	}

	objs := render(t, chartDir, nil)
	sts := ofType[*appsv1.StatefulSet](objs)[0]
	pod := sts.Spec.Template.Spec
	runtimeStage := df.stage("runtime")
	if runtimeStage == nil {
		t.Fatal("no runtime stage")
	}
	user := strings.SplitN(runtimeStage.last("USER"), ":", 2)[0]
	if want := strconv.FormatInt(*pod.SecurityContext.RunAsUser, 10); user != want {
		t.Errorf("images run as USER %s, the chart as runAsUser %s", user, want)
	}
	// runAsNonRoot needs a numeric USER in the image to verify it.
	if _, err := strconv.Atoi(user); err != nil {
		t.Errorf("USER %q is not numeric; the kubelet cannot verify runAsNonRoot", user)
	}
	for _, c := range pod.Containers {
		target := df.stage(c.Name)
		if target == nil {
			t.Errorf("container %s has no Dockerfile target", c.Name)
			continue
		}
		if !strings.HasSuffix(strings.SplitN(c.Image, ":", 2)[0], "/"+c.Name) {
			t.Errorf("container %s runs image %s, not the %s target's image", c.Name, c.Image, c.Name)
		}
		exposed := strings.Fields(target.last("EXPOSE"))
		for _, p := range c.Ports {
			if !slices.Contains(exposed, strconv.Itoa(int(p.ContainerPort))) {
				t.Errorf("container %s port %s=%d is not EXPOSEd by its image (%v)", c.Name, p.Name, p.ContainerPort, exposed)
			}
		}
	}
}

// buildFromDockerfile runs the `go build` of the stage that builds binary,
// with the Dockerfile's ENV and ARG defaults, for this machine's platform,
// into dir. It returns the binary's path.
func buildFromDockerfile(t *testing.T, df *dockerfile, binary, dir string) string {
	t.Helper()
	var st *stage
	var run string
	for _, s := range df.stages {
		for _, in := range s.instrs {
			if in.cmd == "RUN" && strings.Contains(in.rest, "go build") && strings.Contains(in.rest, "./cmd/"+binary) {
				st, run = s, in.rest
			}
		}
	}
	if st == nil {
		t.Fatalf("no Dockerfile stage runs go build ./cmd/%s", binary)
	}
	words := shellWords(df.expand(run))
	words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--mount=") })
	env := append(os.Environ(), df.expandAll(st.env)...)
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && words[i] != "go"; i++ {
		env = append(env, words[i])
	}
	args := words[i:]
	if len(args) < 2 || args[0] != "go" || args[1] != "build" {
		t.Fatalf("unexpected build command %q", run)
	}
	out := filepath.Join(dir, binary)
	for j := range args {
		if args[j] == "-o" && j+1 < len(args) {
			args[j+1] = out
		}
	}
	// Build for this machine so the binary can be started below.
	env = append(env, "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args[1:]...)
	cmd.Dir = ".."
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (env %v): %v\n%s", strings.Join(args, " "), st.env, err, b)
	}
	return out
}

func (df *dockerfile) expandAll(env []string) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = df.expand(e)
	}
	return out
}

// isStatic reports whether the ELF binary needs no dynamic loader, as the
// distroless/static runtime image requires.
func isStatic(t *testing.T, path string) bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// TestImagesRunWithChartArgs builds the binaries exactly as the Dockerfile
// does and starts them with the arguments the chart renders (listen addresses
// and paths moved to loopback port 0 and temp dirs): every flag the chart
// passes exists, the admin port serves the probe paths and /metrics, the
// sidecar reaches the server, and SIGTERM stops both cleanly.
func TestImagesRunWithChartArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the images are linux binaries")
	}
	df := parseDockerfile(t)
	bin := t.TempDir()
	objs := render(t, chartDir, []string{allOnValues})
	var sts *appsv1.StatefulSet
	for _, s := range ofType[*appsv1.StatefulSet](objs) {
		if strings.HasSuffix(s.Name, "-wilddiggr") { // legacy, extra args
			sts = s
		}
	}
	if sts == nil {
		t.Fatal("no wilddiggr StatefulSet in the all-on render")
	}
	dirs := map[string]string{} // chart path -> temp dir
	local := func(c *corev1.Container) []string {
		var args []string
		for _, a := range c.Args {
			name, val, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
			switch name {
			case "listen", "admin", "pprof":
				val = "127.0.0.1:0"
			case "log-dir", "data-dir":
				if dirs[val] == "" {
					dirs[val] = t.TempDir()
				}
				val = dirs[val]
			case "secret-file", "token-file":
				p := filepath.Join(t.TempDir(), filepath.Base(val))
				if err := os.WriteFile(p, []byte("a-test-secret-of-enough-length-0123456789\n"), 0o400); err != nil {
					t.Fatal(err)
				}
				val = p
			default:
				if !strings.Contains(a, "=") {
					args = append(args, a)
					continue
				}
			}
			args = append(args, "-"+name+"="+val)
		}
		return args
	}

	gsC := container(sts.Spec.Template.Spec, "gameserver")
	gsBin := buildFromDockerfile(t, df, "gameserver", bin)
	if !isStatic(t, gsBin) {
		t.Error("gameserver binary is dynamically linked; distroless/static cannot run it")
	}
	gs := proctest.Start(t, gsBin, append(checkFlags(t, gsBin, local(gsC)), "-log.format=json")...)
	adminAddr := gs.Listening(t, 30*time.Second, "admin")["admin"]
	for _, p := range []*corev1.Probe{gsC.LivenessProbe, gsC.ReadinessProbe, gsC.StartupProbe} {
		if p != nil {
			httpOK(t, "http://"+adminAddr+p.HTTPGet.Path)
		}
	}
	metrics := httpOK(t, "http://"+adminAddr+"/metrics")
	if !strings.Contains(metrics, `gameserver_mode_info{mode="legacy"}`) {
		t.Errorf("/metrics lacks the legacy mode info:\n%s", grep(metrics, "mode_info"))
	}
	// service comes from the PodMonitor, never from the exporter.
	if strings.Contains(metrics, `service="`) {
		t.Errorf("game server /metrics sets a service label itself:\n%s", grep(metrics, `service="`))
	}
	// Built with GOEXPERIMENT=goroutineleakprofile, the leak profile is
	// served, on the loopback pprof listener only.
	pprofAddr := gs.Listening(t, 30*time.Second, "pprof")["pprof"]
	httpOK(t, "http://"+pprofAddr+"/debug/pprof/goroutineleak?debug=1")
	if r, err := http.Get("http://" + adminAddr + "/debug/pprof/goroutine"); err != nil {
		t.Error(err)
	} else {
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("the pod-wide admin port serves goroutine dumps: %s", r.Status)
		}
	}

	if _, err := os.Stat("../cmd/sidecar"); os.IsNotExist(err) {
		t.Log("cmd/sidecar does not exist yet: the sidecar image is not exercised")
	} else {
		scC := container(sts.Spec.Template.Spec, "sidecar")
		scBin := buildFromDockerfile(t, df, "sidecar", bin)
		if !isStatic(t, scBin) {
			t.Error("sidecar binary is dynamically linked")
		}
		args := checkFlags(t, scBin, local(scC))
		for i, a := range args {
			if strings.HasPrefix(a, "-target=") {
				args[i] = "-target=http://" + pprofAddr
			}
		}
		sc := proctest.Start(t, scBin, append(args, "-log.format=json")...)
		addr := sc.Listening(t, 30*time.Second, "addr")["addr"]
		for _, p := range []*corev1.Probe{scC.LivenessProbe, scC.ReadinessProbe, scC.StartupProbe} {
			if p != nil {
				httpOK(t, "http://"+addr+p.HTTPGet.Path)
			}
		}
		if m := httpOK(t, "http://"+addr+"/metrics"); strings.Contains(m, `service="`) {
			t.Errorf("sidecar /metrics sets a service label itself:\n%s", grep(m, `service="`))
		}
		stop(t, sc)
	}
	stop(t, gs)

	lg := buildFromDockerfile(t, df, "loadgen", bin)
	if !isStatic(t, lg) {
		t.Error("loadgen binary is dynamically linked")
	}
}

// checkFlags fails for every chart argument whose flag bin does not define
// (read from its -h output).
func checkFlags(t *testing.T, bin string, args []string) []string {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // flag's -h exits non-zero
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][-A-Za-z0-9_.]*)`).FindAllStringSubmatch(string(out), -1) {
		defined[m[1]] = true
	}
	if len(defined) == 0 {
		t.Fatalf("%s -h lists no flags:\n%s", bin, out)
	}
	var kept []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if !defined[name] {
			t.Errorf("the chart passes %s to %s, which has no -%s flag", a, filepath.Base(bin), name)
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// stop sends SIGTERM and wants a clean exit within 30s.
func stop(t *testing.T, p *proctest.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
		if err := p.Err(); err != nil {
			t.Errorf("%s after SIGTERM: %v\n%s", p, err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s ignored SIGTERM for 30s", p)
	}
}

// noKeepAlive leaves no idle connection (and goroutine) behind for goleak.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func httpOK(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 50 { // readiness may take a moment after "listening"
		resp, err := noKeepAlive.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %s: %.200s", resp.Status, b)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: %v", url, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

func grep(s, substr string) string {
	re := regexp.MustCompile("(?m)^.*" + regexp.QuoteMeta(substr) + ".*$")
	return strings.Join(re.FindAllString(s, -1), "\n")
}
