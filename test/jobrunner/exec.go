/*
Copyright 2026 The dify-upgrade-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package jobrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// defaultTerminationPath is where a container writes its termination
	// message unless it says otherwise.
	defaultTerminationPath = "/dev/termination-log"
	// maxMessage bounds a termination message, maxLogBytes and maxLogLines
	// the log tail that replaces an empty one.
	maxMessage  = 4096
	maxLogBytes = 2048
	maxLogLines = 80
	// runnerExitCode is the exit code of a container the runner could not start.
	runnerExitCode = 128
	// reasonCompleted and reasonError are the reasons of a container that
	// ended by itself with exit code 0 or another.
	reasonCompleted = "Completed"
	reasonError     = "Error"
	// waitDelay bounds the wait for output pipes after a process ends.
	waitDelay = 5 * time.Second
)

// containerResult is how one container ended.
type containerResult struct {
	name              string
	exitCode          int32
	reason, message   string
	started, finished time.Time
	// runnerFailure is set when the runner failed the container.
	runnerFailure bool
}

// runError is a reason of the runner to fail a container, with the
// kubelet-like reason it reports.
type runError struct {
	reason, message string
}

func (e *runError) Error() string { return e.message }

// configError is a CreateContainerConfigError.
func configError(format string, args ...any) error {
	return &runError{reason: "CreateContainerConfigError", message: "jobrunner: " + fmt.Sprintf(format, args...)}
}

// failure is the result of a container the runner failed with err.
func failure(c *corev1.Container, started time.Time, err error) containerResult {
	re := &runError{reason: "CreateContainerConfigError", message: err.Error()}
	errors.As(err, &re)
	return containerResult{
		name: c.Name, exitCode: runnerExitCode, reason: re.reason, message: re.message,
		started: started, finished: time.Now(), runnerFailure: true,
	}
}

// process is a container made ready to run on the host.
type process struct {
	path     string
	argv     []string
	env      []string
	dir      string
	cred     *syscall.Credential
	termFile string
	policy   corev1.TerminationMessagePolicy
}

// runContainer runs one container to its end.
func (r *Runner) runContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, ws *workspace, logFile *os.File) containerResult {
	started := time.Now()
	if ctx.Err() != nil {
		return failure(c, started, &runError{reason: reasonError, message: "jobrunner: the pod was deleted"})
	}
	p, err := r.prepare(ctx, pod, c, ws)
	if err != nil {
		return failure(c, started, err)
	}
	from := fileSize(logFile)
	code, err := run(ctx, p, logFile)
	if err != nil {
		return failure(c, started, err)
	}
	res := containerResult{name: c.Name, exitCode: code, reason: reasonCompleted, started: started, finished: time.Now()}
	if code != 0 {
		res.reason = reasonError
	}
	res.message = readMessage(p.termFile)
	if res.message == "" && code != 0 && p.policy == corev1.TerminationMessageFallbackToLogsOnError {
		res.message = logTail(logFile, from)
	}
	return res
}

// prepare turns a container into a process: image, environment, volumes,
// identity and paths.
func (r *Runner) prepare(ctx context.Context, pod *corev1.Pod, c *corev1.Container, ws *workspace) (*process, error) {
	if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		return nil, &runError{reason: "CreateContainerError", message: "jobrunner: sidecar init containers are not supported"}
	}
	rule, ok := r.rule(c.Image)
	if !ok {
		return nil, &runError{reason: "ErrImagePull", message: "jobrunner: no local tool for image " + c.Image}
	}
	if len(c.Command) == 0 {
		return nil, &runError{reason: "CreateContainerError", message: fmt.Sprintf(
			"jobrunner: container %s has no command: the entrypoint of image %s is not known locally", c.Name, c.Image)}
	}
	env, err := r.containerEnv(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	cred := identity(pod, c)
	if cred != nil && cred.Uid != 0 {
		if err := searchable(r.opts.StateDir); err != nil {
			return nil, configError("%v", err)
		}
	}
	home, err := ws.containerDir(c.Name, cred)
	if err != nil {
		return nil, configError("%v", err)
	}
	paths, err := ws.mounts(c, env.lookup)
	if err != nil {
		return nil, err
	}
	p := &process{cred: cred, policy: c.TerminationMessagePolicy, dir: home}
	if p.termFile, err = terminationFile(home, cred); err != nil {
		return nil, configError("%v", err)
	}
	termPath := c.TerminationMessagePath
	if termPath == "" {
		termPath = defaultTerminationPath
	}
	paths.add(termPath, p.termFile)
	for _, arg := range slices.Concat(c.Command, c.Args) {
		p.argv = append(p.argv, paths.rewrite(expand(arg, env.lookup)))
	}
	if local, ok := paths.under(c.WorkingDir); ok {
		if err := makeWorkingDir(local, cred); err != nil {
			return nil, configError("workingDir %s: %v", c.WorkingDir, err)
		}
		p.dir = local
	}
	pathEnv := strings.Join(append(slices.Clone(rule.PathDirs), os.Getenv("PATH")), string(os.PathListSeparator))
	p.env = processEnv(env, paths, home, c.Image, pathEnv)
	if p.path, err = lookPath(p.argv[0], pathEnv); err != nil {
		return nil, &runError{reason: "StartError", message: "jobrunner: " + err.Error()}
	}
	return p, nil
}

// makeWorkingDir creates a missing working directory, owned by the
// container's identity, as container runtimes do.
func makeWorkingDir(dir string, cred *syscall.Credential) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return chown(dir, cred)
}

// processEnv is the environment of a process: the container's, with paths
// rewritten, HOME unless the container sets it, JOBRUNNER_IMAGE_TAG and PATH.
func processEnv(env *envList, paths *mapper, home, image, pathEnv string) []string {
	var out []string
	for _, v := range env.vars {
		out = append(out, v.name+"="+paths.rewrite(v.value))
	}
	if _, ok := env.lookup("HOME"); !ok {
		out = append(out, "HOME="+home)
	}
	_, tag := parseImage(image)
	return append(out, "JOBRUNNER_IMAGE_TAG="+tag, "PATH="+pathEnv)
}

// run starts a process in its own process group, waits for it and kills
// whatever it left behind. It returns the exit code, 128+signal when killed.
func run(ctx context.Context, p *process, logFile *os.File) (int32, error) {
	cmd := exec.CommandContext(ctx, p.path, p.argv[1:]...)
	cmd.Args[0] = p.argv[0]
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return 0, &runError{reason: "StartError", message: fmt.Sprintf("jobrunner: starting %s: %v", p.argv[0], err)}
	}
	_ = cmd.Wait() // the exit status is in ProcessState
	_ = killGroup(cmd.Process.Pid)
	status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, &runError{reason: reasonError, message: "jobrunner: no exit status for " + p.argv[0]}
	}
	if status.Signaled() {
		return 128 + int32(status.Signal()), nil
	}
	return int32(status.ExitStatus()), nil
}

// killGroup kills a process group; a group already gone is no error.
func killGroup(pgid int) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// lookPath finds a command in the container's PATH. A name with a slash is
// taken as it is.
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %s", name, pathEnv)
}

// rule returns the ImageRule of an image.
func (r *Runner) rule(image string) (ImageRule, bool) {
	repo, _ := parseImage(image)
	for _, rule := range r.opts.Images {
		if rule.Repository == repo {
			return rule, true
		}
	}
	return ImageRule{}, false
}

// parseImage returns the last path element of an image reference without tag
// or digest, and its tag ("latest" when none).
func parseImage(ref string) (repo, tag string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		return last[:i], last[i+1:]
	}
	return last, "latest"
}

// identity is the credential a container's process runs with: its
// securityContext's user and group when the runner is root and they are set,
// nil otherwise (the runner's own).
func identity(pod *corev1.Pod, c *corev1.Container) *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	var uid, gid *int64
	psc := pod.Spec.SecurityContext
	if psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		uid = cmpOr(sc.RunAsUser, uid)
		gid = cmpOr(sc.RunAsGroup, gid)
	}
	if uid == nil && gid == nil {
		return nil
	}
	cred := &syscall.Credential{}
	if uid != nil {
		cred.Uid = uint32(*uid)
	}
	if gid != nil {
		cred.Gid = uint32(*gid)
	}
	if psc != nil {
		if psc.FSGroup != nil {
			cred.Groups = append(cred.Groups, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	return cred
}

// cmpOr returns the first pointer that is not nil.
func cmpOr(ps ...*int64) *int64 {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// chown gives a path to the identity, when there is one.
func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Lchown(path, int(cred.Uid), int(cred.Gid))
}

// searchable checks that other users can reach dir: every directory up to the
// root lets them through.
func searchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by other users (chmod o+x), so a container running as another user cannot reach the state dir %s", d, dir)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// terminationFile creates the empty local file that stands for a container's
// terminationMessagePath, writable by the container.
func terminationFile(dir string, cred *syscall.Credential) (string, error) {
	path := filepath.Join(dir, ".termination-log")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return "", err
	}
	return path, chown(path, cred)
}

// readMessage reads a termination message, up to maxMessage bytes. Anything
// but a regular file (a symlink the process left) reads as empty.
func readMessage(path string) string {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close() //nolint:errcheck // read only
	data, _ := io.ReadAll(io.LimitReader(f, maxMessage))
	return string(data)
}

// fileSize is the size of an open file, 0 if unknown.
func fileSize(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail is the end of what was logged since offset from: at most
// maxLogBytes, of which at most maxLogLines lines.
func logTail(f *os.File, from int64) string {
	end := fileSize(f)
	start := max(from, end-maxLogBytes)
	if end <= start {
		return ""
	}
	buf := make([]byte, end-start)
	n, _ := f.ReadAt(buf, start)
	text := string(buf[:n])
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > maxLogLines {
		lines = lines[len(lines)-maxLogLines:]
	}
	return strings.Join(lines, "")
}

// envVar is one environment variable of a container.
type envVar struct{ name, value string }

// envList is a container's environment in order; setting a name again
// replaces its value in place.
type envList struct {
	vars  []envVar
	index map[string]int
}

func (l *envList) set(name, value string) {
	if l.index == nil {
		l.index = map[string]int{}
	}
	if i, ok := l.index[name]; ok {
		l.vars[i].value = value
		return
	}
	l.index[name] = len(l.vars)
	l.vars = append(l.vars, envVar{name, value})
}

func (l *envList) lookup(name string) (string, bool) {
	i, ok := l.index[name]
	if !ok {
		return "", false
	}
	return l.vars[i].value, true
}

// containerEnv resolves a container's environment as the kubelet does:
// envFrom first, then env, whose values expand $(VAR) of the variables set
// before them.
func (r *Runner) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*envList, error) {
	env := &envList{}
	for _, from := range c.EnvFrom {
		data, err := r.envSource(ctx, pod.Namespace, from)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if name := from.Prefix + k; validEnvName(name) {
				env.set(name, string(data[k]))
			}
		}
	}
	for _, e := range c.Env {
		value, ok, err := r.envValue(ctx, pod, e, env)
		if err != nil {
			return nil, err
		}
		if ok {
			env.set(e.Name, value)
		}
	}
	return env, nil
}

// validEnvName reports whether a key of envFrom can be a variable name.
func validEnvName(name string) bool {
	if name == "" || strings.Contains(name, "=") {
		return false
	}
	for _, ch := range name {
		if ch < ' ' || ch > '~' {
			return false
		}
	}
	return true
}

// envSource reads the ConfigMap or Secret of an envFrom entry; a missing
// optional one is empty.
func (r *Runner) envSource(ctx context.Context, ns string, from corev1.EnvFromSource) (map[string][]byte, error) {
	switch {
	case from.ConfigMapRef != nil:
		return r.configMapData(ctx, ns, from.ConfigMapRef.Name, isTrue(from.ConfigMapRef.Optional))
	case from.SecretRef != nil:
		return r.secretData(ctx, ns, from.SecretRef.Name, isTrue(from.SecretRef.Optional))
	}
	return nil, configError("envFrom entry with neither configMapRef nor secretRef")
}

// envValue resolves one env entry; ok is false for a missing optional key.
func (r *Runner) envValue(ctx context.Context, pod *corev1.Pod, e corev1.EnvVar, env *envList) (string, bool, error) {
	from := e.ValueFrom
	switch {
	case from == nil:
		return expand(e.Value, env.lookup), true, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		data, err := r.secretData(ctx, pod.Namespace, ref.Name, isTrue(ref.Optional))
		return keyValue(data, ref.Key, isTrue(ref.Optional), "Secret", pod.Namespace, ref.Name, err)
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		data, err := r.configMapData(ctx, pod.Namespace, ref.Name, isTrue(ref.Optional))
		return keyValue(data, ref.Key, isTrue(ref.Optional), "ConfigMap", pod.Namespace, ref.Name, err)
	case from.FieldRef != nil:
		v, err := fieldValue(pod, from.FieldRef.FieldPath)
		return v, err == nil, err
	}
	return "", false, configError("env %s: only value, secretKeyRef, configMapKeyRef and fieldRef are supported", e.Name)
}

// keyValue picks a key of a Secret's or ConfigMap's data.
func keyValue(data map[string][]byte, key string, optional bool, kind, ns, name string, err error) (string, bool, error) {
	if err != nil {
		return "", false, err
	}
	v, ok := data[key]
	if !ok && !optional {
		return "", false, configError("couldn't find key %s in %s %s/%s", key, kind, ns, name)
	}
	return string(v), ok, nil
}

// secretData reads a Secret; a missing optional one is empty.
func (r *Runner) secretData(ctx context.Context, ns, name string, optional bool) (map[string][]byte, error) {
	s, err := r.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return nil, nil
	}
	if err != nil {
		return nil, configError("secret %q: %v", name, err)
	}
	return s.Data, nil
}

// configMapData reads a ConfigMap's data and binary data; a missing optional
// one is empty.
func (r *Runner) configMapData(ctx context.Context, ns, name string, optional bool) (map[string][]byte, error) {
	cm, err := r.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return nil, nil
	}
	if err != nil {
		return nil, configError("configmap %q: %v", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	maps.Copy(data, cm.BinaryData)
	return data, nil
}

// fieldValue resolves a downward API field of the pod.
func fieldValue(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP":
		return localIP, nil
	}
	for prefix, values := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(key, "']") {
			return values[strings.TrimSuffix(key, "']")], nil
		}
	}
	return "", configError("field %s is not supported", path)
}

// isTrue dereferences an optional flag.
func isTrue(b *bool) bool { return b != nil && *b }

// expand replaces $(VAR) by the value of VAR as Kubernetes does: $$ is a
// literal $, and a reference to an unknown variable stays as it is.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			ref := s[i : i+3+end]
			if v, ok := lookup(ref[2 : len(ref)-1]); ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// workspace is the local side of one pod: its directory and its volumes.
type workspace struct {
	dir string
	// volumes maps each volume name to its local directory.
	volumes map[string]string
}

// newWorkspace creates a pod's directory and volumes. The workspace it
// returns, even with an error, is to be removed.
func (r *Runner) newWorkspace(ctx context.Context, pod *corev1.Pod) (*workspace, error) {
	ws := &workspace{dir: filepath.Join(r.opts.StateDir, "pods", string(pod.UID)), volumes: map[string]string{}}
	for _, dir := range []string{ws.dir, filepath.Join(ws.dir, "volumes"), filepath.Join(ws.dir, "containers")} {
		if err := mkdirMode(dir, 0o755); err != nil {
			return ws, configError("pod directory: %v", err)
		}
	}
	for _, v := range pod.Spec.Volumes {
		local, err := r.volumeDir(ctx, pod, ws, v)
		if err != nil {
			return ws, err
		}
		ws.volumes[v.Name] = local
	}
	return ws, nil
}

// remove deletes the pod's directory; claims and host paths stay.
func (ws *workspace) remove() {
	if ws != nil {
		_ = os.RemoveAll(ws.dir)
	}
}

// containerDir creates a container's own directory, its HOME and default
// working directory, owned by its identity.
func (ws *workspace) containerDir(name string, cred *syscall.Credential) (string, error) {
	dir := filepath.Join(ws.dir, "containers", name)
	if err := mkdirMode(dir, 0o755); err != nil {
		return "", err
	}
	return dir, chown(dir, cred)
}

// mounts maps a container's mount paths to local directories, creating
// missing subPath directories with the mode of their parent.
func (ws *workspace) mounts(c *corev1.Container, lookup func(string) (string, bool)) (*mapper, error) {
	m := &mapper{}
	for _, vm := range c.VolumeMounts {
		local, ok := ws.volumes[vm.Name]
		if !ok {
			return nil, configError("volume mount %s: no volume %s", vm.MountPath, vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, lookup)
		}
		if sub != "" {
			if !filepath.IsLocal(sub) {
				return nil, configError("subPath %q must be a relative path inside the volume", sub)
			}
			local = filepath.Join(local, sub)
			if err := makeSubPath(local); err != nil {
				return nil, configError("subPath %s: %v", sub, err)
			}
		}
		m.add(vm.MountPath, local)
	}
	return m, nil
}

// makeSubPath creates a missing subPath directory with its parent's mode.
func makeSubPath(dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	parent, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, parent.Mode().Perm()); err != nil {
		return err
	}
	return os.Chmod(dir, parent.Mode().Perm())
}

// volumeDir makes the local directory of a volume.
func (r *Runner) volumeDir(ctx context.Context, pod *corev1.Pod, ws *workspace, v corev1.Volume) (string, error) {
	dir := filepath.Join(ws.dir, "volumes", v.Name)
	switch {
	case v.PersistentVolumeClaim != nil:
		return r.claimDir(pod.Namespace, v.PersistentVolumeClaim.ClaimName)
	case v.HostPath != nil:
		return v.HostPath.Path, nil
	case v.EmptyDir != nil:
		if err := mkdirMode(dir, 0o777); err != nil {
			return "", configError("emptyDir %s: %v", v.Name, err)
		}
		return dir, nil
	}
	files, err := r.volumeFiles(ctx, pod, v)
	if err != nil {
		return "", err
	}
	if err := writeFiles(dir, files); err != nil {
		return "", configError("volume %s: %v", v.Name, err)
	}
	return dir, nil
}

// claimDir creates, on first use, the directory of a claim, writable by
// everyone. An existing one is left as it is, so a test can make it unwritable.
func (r *Runner) claimDir(ns, claim string) (string, error) {
	dir := ClaimDir(r.opts.StateDir, ns, claim)
	if err := mkdirMode(filepath.Dir(dir), 0o755); err != nil {
		return "", configError("claim %s: %v", claim, err)
	}
	if err := mkdirMode(dir, 0o777); err != nil {
		return "", configError("claim %s: %v", claim, err)
	}
	return dir, nil
}

// mkdirMode creates a directory with exactly this mode, whatever the umask,
// an existing directory is left as it is.
func mkdirMode(dir string, mode os.FileMode) error {
	err := os.Mkdir(dir, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// file is a file of a secret, configMap, downwardAPI or projected volume.
type file struct {
	path string
	data []byte
	mode os.FileMode
}

// writeFiles writes a volume's files into dir.
func writeFiles(dir string, files []file) error {
	if err := mkdirMode(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if !filepath.IsLocal(f.path) {
			return fmt.Errorf("path %q must be relative and inside the volume", f.path)
		}
		full := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// volumeFiles reads the files of a secret, configMap, downwardAPI or
// projected volume.
func (r *Runner) volumeFiles(ctx context.Context, pod *corev1.Pod, v corev1.Volume) ([]file, error) {
	ns := pod.Namespace
	switch {
	case v.Secret != nil:
		s := v.Secret
		data, err := r.secretData(ctx, ns, s.SecretName, isTrue(s.Optional))
		if err != nil {
			return nil, err
		}
		return keyFiles(data, s.Items, s.DefaultMode, isTrue(s.Optional), "Secret", ns, s.SecretName)
	case v.ConfigMap != nil:
		cm := v.ConfigMap
		data, err := r.configMapData(ctx, ns, cm.Name, isTrue(cm.Optional))
		if err != nil {
			return nil, err
		}
		return keyFiles(data, cm.Items, cm.DefaultMode, isTrue(cm.Optional), "ConfigMap", ns, cm.Name)
	case v.DownwardAPI != nil:
		return downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	case v.Projected != nil:
		return r.projectedFiles(ctx, pod, v.Projected)
	}
	return nil, configError("volume %s: only persistentVolumeClaim, emptyDir, hostPath, secret, configMap, downwardAPI and projected volumes are supported", v.Name)
}

// projectedFiles reads the files of a projected volume, such as the service
// account token volume every pod gets.
func (r *Runner) projectedFiles(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource) ([]file, error) {
	var files []file
	for _, src := range p.Sources {
		var more []file
		var err error
		switch {
		case src.Secret != nil:
			s := src.Secret
			var data map[string][]byte
			if data, err = r.secretData(ctx, pod.Namespace, s.Name, isTrue(s.Optional)); err == nil {
				more, err = keyFiles(data, s.Items, p.DefaultMode, isTrue(s.Optional), "Secret", pod.Namespace, s.Name)
			}
		case src.ConfigMap != nil:
			cm := src.ConfigMap
			var data map[string][]byte
			if data, err = r.configMapData(ctx, pod.Namespace, cm.Name, isTrue(cm.Optional)); err == nil {
				more, err = keyFiles(data, cm.Items, p.DefaultMode, isTrue(cm.Optional), "ConfigMap", pod.Namespace, cm.Name)
			}
		case src.DownwardAPI != nil:
			more, err = downwardFiles(pod, src.DownwardAPI.Items, p.DefaultMode)
		case src.ServiceAccountToken != nil:
			var token []byte
			if token, err = r.token(ctx, pod, src.ServiceAccountToken); err == nil {
				more = []file{{path: src.ServiceAccountToken.Path, data: token, mode: fileMode(nil, p.DefaultMode)}}
			}
		default:
			err = configError("projected volume: only secret, configMap, downwardAPI and serviceAccountToken sources are supported")
		}
		if err != nil {
			return nil, err
		}
		files = append(files, more...)
	}
	return files, nil
}

// token asks the API server for a token of the pod's service account, bound
// to the pod.
func (r *Runner) token(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) ([]byte, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	resp, err := r.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, configError("token of service account %s: %v", sa, err)
	}
	return []byte(resp.Status.Token), nil
}

// keyFiles turns the data of a Secret or ConfigMap into files: every key, or
// the items given.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool, kind, ns, name string) ([]file, error) {
	var files []file
	if len(items) == 0 {
		for k, v := range data {
			files = append(files, file{path: k, data: v, mode: fileMode(nil, defaultMode)})
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, configError("couldn't find key %s in %s %s/%s", it.Key, kind, ns, name)
		}
		files = append(files, file{path: it.Path, data: v, mode: fileMode(it.Mode, defaultMode)})
	}
	return files, nil
}

// downwardFiles turns downward API items into files.
func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) ([]file, error) {
	var files []file
	for _, it := range items {
		if it.FieldRef == nil {
			return nil, configError("downward API %s: only fieldRef is supported", it.Path)
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath)
		if err != nil {
			return nil, err
		}
		files = append(files, file{path: it.Path, data: []byte(v), mode: fileMode(it.Mode, defaultMode)})
	}
	return files, nil
}

// fileMode is an item's mode, else the volume's default mode, else 0644.
func fileMode(mode, defaultMode *int32) os.FileMode {
	switch {
	case mode != nil:
		return os.FileMode(*mode) & os.ModePerm
	case defaultMode != nil:
		return os.FileMode(*defaultMode) & os.ModePerm
	}
	return 0o644
}

// mapping maps one container path to a local path.
type mapping struct{ container, local string }

// mapper rewrites container paths into local ones.
type mapper struct {
	// list is kept longest container path first.
	list []mapping
}

// add maps a container path (other than the root) to a local path.
func (m *mapper) add(containerPath, local string) {
	containerPath = filepath.Clean(containerPath)
	if containerPath == "/" || !filepath.IsAbs(containerPath) {
		return
	}
	m.list = append(m.list, mapping{container: containerPath, local: local})
	slices.SortStableFunc(m.list, func(a, b mapping) int { return len(b.container) - len(a.container) })
}

// rewrite replaces every container path in s, at a path boundary, by its
// local path.
func (m *mapper) rewrite(s string) string {
	if len(m.list) == 0 || !strings.Contains(s, "/") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if i == 0 || (s[i-1] != '/' && !isPathChar(s[i-1])) {
			if mp, ok := m.match(s[i:]); ok {
				b.WriteString(mp.local)
				i += len(mp.container)
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// match finds the longest container path s starts with, followed by a
// character that cannot continue a path element.
func (m *mapper) match(s string) (mapping, bool) {
	for _, mp := range m.list {
		if rest, ok := strings.CutPrefix(s, mp.container); ok && (rest == "" || !isPathChar(rest[0])) {
			return mp, true
		}
	}
	return mapping{}, false
}

// under maps a path inside a mount (the whole of p) to its local path.
func (m *mapper) under(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	p = filepath.Clean(p)
	mp, ok := m.match(p)
	if !ok {
		return "", false
	}
	rest := p[len(mp.container):]
	if rest != "" && rest[0] != '/' {
		return "", false
	}
	return mp.local + rest, true
}

// isPathChar reports whether c can be part of a path element next to a mount
// path: a letter, a digit, '.', '_' or '-'.
func isPathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
