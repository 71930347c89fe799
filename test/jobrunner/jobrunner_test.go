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
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/difyops/dify-upgrade-operator/test/localcluster"
)

func TestParseImage(t *testing.T) {
	for ref, want := range map[string][2]string{
		"postgres:16":                                     {"postgres", "16"},
		"docker.io/library/postgres:15-alpine":            {"postgres", "15-alpine"},
		"registry.example.com/langgenius/dify-api:1.11.1": {"dify-api", "1.11.1"},
		"registry:5000/busybox":                           {"busybox", "latest"},
		"busybox@sha256:0123":                             {"busybox", "latest"},
		"busybox:1.36@sha256:0123":                        {"busybox", "1.36"},
	} {
		repo, tag := parseImage(ref)
		if repo != want[0] || tag != want[1] {
			t.Errorf("parseImage(%q) = %q, %q; want %q, %q", ref, repo, tag, want[0], want[1])
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "DIR": "/data"}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	for in, want := range map[string]string{
		"$(A)-$(DIR)/f": "x-/data/f",
		"$$(A)":         "$(A)",
		"$(UNKNOWN)":    "$(UNKNOWN)",
		"$(A":           "$(A",
		"cost: 5$":      "cost: 5$",
		"$HOME $(A)":    "$HOME x",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewrite(t *testing.T) {
	m := &mapper{}
	m.add("/data", "/L/data")
	m.add("/data/sub/", "/L/sub")
	m.add("/dev/termination-log", "/L/term")
	for in, want := range map[string]string{
		"/data":                          "/L/data",
		"/data/x.sql":                    "/L/data/x.sql",
		"/data/sub/x":                    "/L/sub/x",
		"--dir=/data:/data/sub":          "--dir=/L/data:/L/sub",
		"/database":                      "/database",
		"/mnt/data":                      "/mnt/data",
		"x/data":                         "x/data",
		"echo hi > /dev/termination-log": "echo hi > /L/term",
		`cp "/data/a" '/data'`:           `cp "/L/data/a" '/L/data'`,
	} {
		if got := m.rewrite(in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
	if got, ok := m.under("/data/sub/work"); !ok || got != "/L/sub/work" {
		t.Errorf("under(/data/sub/work) = %q, %v", got, ok)
	}
	if _, ok := m.under("/srv"); ok {
		t.Error("under(/srv) should not map")
	}
}

// env is what the cases of TestRunner share.
type env struct {
	ctx      context.Context
	client   kubernetes.Interface
	runner   *Runner
	stateDir string
}

// TestRunner runs Jobs on the local cluster: kwok leaves their pods to the
// Runner, which runs them with the host's tools standing in for busybox.
func TestRunner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel) // the parallel cases run after this function returns
	dir := t.TempDir()
	cluster, err := localcluster.Start(dir)
	if err != nil {
		// End whatever part of the cluster did start.
		_ = (&localcluster.Cluster{Dir: dir}).Stop()
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	})
	cfg, err := cluster.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, client: kubernetes.NewForConfigOrDie(cfg), stateDir: searchableDir(t)}
	e.runner, err = Start(ctx, cfg, Options{StateDir: e.stateDir, Images: []ImageRule{{Repository: "busybox"}}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.runner.Stop)

	t.Run("claim, secret and user", func(t *testing.T) { t.Parallel(); testClaim(t, e) })
	t.Run("exit code", func(t *testing.T) { t.Parallel(); testExitCode(t, e) })
	t.Run("unknown image", func(t *testing.T) { t.Parallel(); testUnknownImage(t, e) })
	t.Run("deleted job", func(t *testing.T) { t.Parallel(); testDeleted(t, e) })
	t.Run("unwritable claim", func(t *testing.T) { t.Parallel(); testUnwritableClaim(t, e) })
	t.Run("init container, volumes and env", func(t *testing.T) { t.Parallel(); testVolumesAndEnv(t, e) })
}

// testClaim: a Job running as user 65532 writes a Secret's value into its
// claim and a termination message.
func testClaim(t *testing.T, e *env) {
	ns := e.namespace(t, "claim")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "s3cret"}}
	if _, err := e.client.CoreV1().Secrets(ns).Create(e.ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.claim(t, ns, "backup")
	spec := podSpec("docker.io/library/busybox:1.36",
		`mkdir -p "$OUT" && printf %s "$PASSWORD" >"$OUT/secret.txt" && id -u >"$OUT/uid" && echo "wrote $(OUT)" >/dev/termination-log && echo "tag=$JOBRUNNER_IMAGE_TAG"`)
	spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(65532)), RunAsGroup: new(int64(65532)), FSGroup: new(int64(65532))}
	spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "OUT", Value: "/backup/out"},
	}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/backup"}}
	spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "backup"}}}}
	e.createJob(t, ns, "write", spec)
	e.waitJob(t, ns, "write", batchv1.JobComplete)

	out := filepath.Join(ClaimDir(e.stateDir, ns, "backup"), "out")
	if got := readFile(t, filepath.Join(out, "secret.txt")); got != "s3cret" {
		t.Errorf("secret.txt = %q, want s3cret", got)
	}
	if os.Geteuid() == 0 {
		if got := readFile(t, filepath.Join(out, "uid")); got != "65532\n" {
			t.Errorf("the Job ran as uid %q, want 65532", got)
		}
	}
	term := e.terminated(t, ns, "write")
	if term.ExitCode != 0 || term.Reason != "Completed" || term.Message != "wrote "+out+"\n" {
		t.Errorf("terminated = exit %d, %s, %q; want 0, Completed, %q", term.ExitCode, term.Reason, term.Message, "wrote "+out+"\n")
	}
	runs := e.runsOf(ns, "write")
	if len(runs) != 1 || runs[0].ExitCode != 0 || runs[0].Phase != corev1.PodSucceeded {
		t.Errorf("runs = %+v, want one that succeeded", runs)
	}
	logs := readFile(t, filepath.Join(e.stateDir, "logs", ns+"_"+runs[0].Pod+".log"))
	if !strings.Contains(logs, "tag=1.36") {
		t.Errorf("log %q lacks the image tag", logs)
	}
}

// testUnwritableClaim: a claim its user cannot write to fails the Job, as on a
// real node; the runner leaves the existing directory's mode alone.
func testUnwritableClaim(t *testing.T, e *env) {
	if os.Geteuid() != 0 {
		t.Skip("only a runner running as root switches to the pod's user")
	}
	ns := e.namespace(t, "readonly")
	dir := ClaimDir(e.stateDir, ns, "backup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.claim(t, ns, "backup")
	spec := podSpec("busybox", "echo data >/backup/dump.sql")
	spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(65532))}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/backup"}}
	spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "backup"}}}}
	e.createJob(t, ns, "dump", spec)
	e.waitJob(t, ns, "dump", batchv1.JobFailed)
	if term := e.terminated(t, ns, "dump"); term.ExitCode == 0 {
		t.Errorf("terminated = %+v, want a failure", term)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("claim dir: %v, %v; want mode 0755 kept", fi.Mode(), err)
	}
}

// testVolumesAndEnv: an init container fills an emptyDir that the container
// mounts by subPath as its working directory, beside a configMap volume with
// items; env from envFrom with a prefix and from fieldRef.
func testVolumesAndEnv(t *testing.T, e *env) {
	ns := e.namespace(t, "volumes")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"mode": "fast", "conf.ini": "[a]\nb=1\n"}}
	if _, err := e.client.CoreV1().ConfigMaps(ns).Create(e.ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := podSpec("busybox", "cat from-init /etc/app/app/conf.ini >/dev/termination-log")
	spec.InitContainers = []corev1.Container{{
		Name: "prepare", Image: "busybox",
		Command: []string{"sh", "-c", `mkdir -p /scratch/sub && printf '%s %s\n' "$POD" "$CFG_mode" >/scratch/sub/from-init`},
		Env: []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
	}}
	main := &spec.Containers[0]
	main.WorkingDir = "/work"
	main.VolumeMounts = []corev1.VolumeMount{
		{Name: "scratch", MountPath: "/work", SubPath: "sub"},
		{Name: "config", MountPath: "/etc/app"},
	}
	spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
			Items:                []corev1.KeyToPath{{Key: "conf.ini", Path: "app/conf.ini"}},
		}}},
	}
	e.createJob(t, ns, "volumes", spec)
	e.waitJob(t, ns, "volumes", batchv1.JobComplete)
	pod := e.pod(t, ns, "volumes")
	want := pod.Name + " fast\n[a]\nb=1\n"
	if term := e.terminated(t, ns, "volumes"); term.Message != want {
		t.Errorf("message = %q, want %q", term.Message, want)
	}
	if init := pod.Status.InitContainerStatuses; len(init) != 1 || init[0].State.Terminated == nil || init[0].State.Terminated.Reason != "Completed" {
		t.Errorf("init container statuses = %+v, want one Completed", init)
	}
}

// testExitCode: a failing command fails the Job with its exit code, and its
// output is the message.
func testExitCode(t *testing.T, e *env) {
	ns := e.namespace(t, "exit")
	spec := podSpec("busybox", "echo boom; exit 3")
	spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	e.createJob(t, ns, "fail", spec)
	e.waitJob(t, ns, "fail", batchv1.JobFailed)
	term := e.terminated(t, ns, "fail")
	if term.ExitCode != 3 || term.Reason != "Error" || term.Message != "boom\n" {
		t.Errorf("terminated = exit %d, %s, %q; want 3, Error, \"boom\\n\"", term.ExitCode, term.Reason, term.Message)
	}
}

// testUnknownImage: an image without a rule fails the Job, saying why.
func testUnknownImage(t *testing.T, e *env) {
	ns := e.namespace(t, "image")
	image := "registry.example.com/tools/nothing:1"
	e.createJob(t, ns, "unknown", podSpec(image, "true"))
	e.waitJob(t, ns, "unknown", batchv1.JobFailed)
	pod := e.pod(t, ns, "unknown")
	want := "jobrunner: no local tool for image " + image
	if pod.Status.Message != want {
		t.Errorf("pod message = %q, want %q", pod.Status.Message, want)
	}
	if term := e.terminated(t, ns, "unknown"); term.Reason != "ErrImagePull" || term.Message != want {
		t.Errorf("terminated = %s, %q; want ErrImagePull, %q", term.Reason, term.Message, want)
	}
}

// testDeleted: deleting a running Job kills its processes, children included.
func testDeleted(t *testing.T, e *env) {
	ns := e.namespace(t, "deleted")
	dir := searchableDir(t)
	spec := podSpec("busybox", "sleep 60 & echo $! >/work/pid; wait")
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: dir}}}}
	e.createJob(t, ns, "sleep", spec)

	var pid int
	e.eventually(t, "the sleep to start", func() (bool, error) {
		raw, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return false, nil
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
		return err == nil, err
	})
	if !localcluster.Alive(pid) {
		t.Fatalf("sleep (pid %d) is not running", pid)
	}
	background := metav1.DeletePropagationBackground
	err := e.client.BatchV1().Jobs(ns).Delete(e.ctx, "sleep", metav1.DeleteOptions{PropagationPolicy: &background})
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(t, "the sleep to be killed", func() (bool, error) { return !localcluster.Alive(pid), nil })
	e.eventually(t, "the run to end", func() (bool, error) {
		runs := e.runsOf(ns, "sleep")
		return len(runs) == 1 && !runs[0].End.IsZero(), nil
	})
	if run := e.runsOf(ns, "sleep")[0]; run.ExitCode != 128+9 || run.Phase != corev1.PodFailed {
		t.Errorf("run = %+v, want Failed with exit code 137", run)
	}
}

// claim creates a PersistentVolumeClaim and its volume.
func (e *env) claim(t *testing.T, ns, name string) {
	t.Helper()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	claim, err := e.client.CoreV1().PersistentVolumeClaims(ns).Create(e.ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.runner.BindClaim(e.ctx, claim); err != nil {
		t.Fatal(err)
	}
}

// podSpec is a pod that runs a shell script once.
func podSpec(image, script string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "main", Image: image, Command: []string{"sh", "-c", script}}},
	}
}

// searchableDir is a temporary directory that other users can reach (unlike
// t.TempDir, whose parent only its owner can enter).
func searchableDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "jobrunner-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// namespace creates a namespace and waits for its default service account,
// without which no pod can be created.
func (e *env) namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.client.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(t, "the default service account of "+name, func() (bool, error) {
		_, err := e.client.CoreV1().ServiceAccounts(name).Get(e.ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return name
}

// createJob creates a Job that fails at its first failure.
func (e *env) createJob(t *testing.T, ns, name string, spec corev1.PodSpec) {
	t.Helper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: new(int32(0)),
			Template:     corev1.PodTemplateSpec{Spec: spec},
		},
	}
	if _, err := e.client.BatchV1().Jobs(ns).Create(e.ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitJob waits until the Job has condition want (Complete or Failed), and
// fails at once if it gets the other one.
func (e *env) waitJob(t *testing.T, ns, name string, want batchv1.JobConditionType) {
	t.Helper()
	e.eventually(t, fmt.Sprintf("job %s/%s to be %s", ns, name, want), func() (bool, error) {
		job, err := e.client.BatchV1().Jobs(ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue || (c.Type != batchv1.JobComplete && c.Type != batchv1.JobFailed) {
				continue
			}
			if c.Type != want {
				return false, fmt.Errorf("job %s/%s is %s: %s", ns, name, c.Type, c.Message)
			}
			return true, nil
		}
		return false, nil
	})
}

// pod returns the pod of a Job.
func (e *env) pod(t *testing.T, ns, job string) *corev1.Pod {
	t.Helper()
	pods, err := e.client.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{LabelSelector: JobNameLabel + "=" + job})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("job %s/%s has %d pods, want 1", ns, job, len(pods.Items))
	}
	return &pods.Items[0]
}

// terminated is how the Job's only container ended.
func (e *env) terminated(t *testing.T, ns, job string) *corev1.ContainerStateTerminated {
	t.Helper()
	pod := e.pod(t, ns, job)
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("pod %s/%s: container statuses %+v, want one terminated", ns, pod.Name, pod.Status.ContainerStatuses)
	}
	return pod.Status.ContainerStatuses[0].State.Terminated
}

// runsOf returns the runner's runs of a Job.
func (e *env) runsOf(ns, job string) []Run {
	var runs []Run
	for _, run := range e.runner.Runs() {
		if run.Namespace == ns && run.Job == job {
			runs = append(runs, run)
		}
	}
	return runs
}

// eventually polls cond until it holds, fails or 30 seconds pass.
func (e *env) eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond() })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
