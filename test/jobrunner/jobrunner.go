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

// Package jobrunner is a small kubelet for Job pods, for tests on the local
// cluster of hack/local-cluster.sh. kwok fakes every other pod, but its stages
// leave pods labelled batch.kubernetes.io/job-name alone: once the scheduler
// has placed such a pod, a Runner runs its containers as local processes and
// writes the pod status back, so the Job controller completes or fails the
// Job by what the command really did.
//
// Images. Nothing is pulled: an ImageRule maps an image repository (the last
// path element of the reference, without tag or digest) to local directories
// put ahead of PATH, where tools standing in for the image live. A container
// whose image has no rule fails ("jobrunner: no local tool for image ..."), and
// so does one without a command: the entrypoints of images are not known here.
// JOBRUNNER_IMAGE_TAG tells the process the tag of its image.
//
// Containers run one after another: the init containers in order, then the
// containers in order; the first failure ends the pod. Sidecar init containers
// (restartPolicy Always) are refused. Probes, resources, readOnly and
// activeDeadlineSeconds are ignored (the Job controller enforces its own
// deadline by deleting pods).
//
// Paths. The processes run on the host, so container paths are rewritten.
// Volumes live in local directories: a persistentVolumeClaim in ClaimDir,
// shared by every pod and kept; emptyDir, secret, configMap, downwardAPI and
// projected volumes in a directory per pod, removed when the pod ends; hostPath
// as is. In every environment value and every command or args element, each
// substring that starts with a mount path is replaced by the local directory
// (subPath included): mount paths are tried longest first, and match only at a
// path boundary, that is not preceded by '/' or a path character (a letter, a
// digit, '.', '_' or '-') and followed by '/', the end of the string or a
// character that is not a path character. The terminationMessagePath maps to
// a local file the same way, and workingDir too when it is under a mount
// (otherwise the container's own temporary directory, also its HOME, is the
// working directory). Paths a script builds by itself are not rewritten:
// scripts run by Jobs should take their paths from environment variables or
// arguments.
//
// Identity. When the runner runs as root and the pod or the container sets
// runAsUser or runAsGroup, the process runs with that identity (fsGroup and
// supplementalGroups as supplementary groups), so permissions behave as in a
// non-root container: an unwritable volume fails the Job. The parents of
// StateDir must then be searchable by other users. Each process leads its own
// process group, killed as a whole when the pod is deleted, when the Runner
// stops and when the process ends.
//
// Claims. The scheduler places a pod only once its claims are bound, and
// nothing provisions volumes on the local cluster: create the claim, then a
// PersistentVolume bound to it in advance (BindClaim, or Volume for the
// object), which the volume controller binds at once.
package jobrunner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// JobNameLabel marks the pods of a Job; the Runner runs only those.
const JobNameLabel = "batch.kubernetes.io/job-name"

const (
	// maxParallel bounds how many pods run at once.
	maxParallel = 8
	// localIP is the pod and host IP the Runner reports.
	localIP = "127.0.0.1"
	// syncTimeout bounds the wait for the first list of pods.
	syncTimeout = 30 * time.Second
)

// ImageRule says which local tools stand in for the images of one repository.
type ImageRule struct {
	// Repository is the last path element of an image reference without tag
	// or digest: "postgres" matches postgres:16 and
	// docker.io/library/postgres:15-alpine.
	Repository string
	// PathDirs are put ahead of the runner's PATH for those containers.
	PathDirs []string
}

// Options configure a Runner.
type Options struct {
	// StateDir holds the claims' data (ClaimDir), the pods' temporary
	// directories and the logs (logs/<namespace>_<pod>.log).
	StateDir string
	// Images are the images the Runner can run.
	Images []ImageRule
	// Logf, when set, receives one line per finished pod and any trouble.
	Logf func(format string, args ...any)
}

// Run records one pod the Runner ran.
type Run struct {
	Namespace string
	Pod       string
	// Job is the pod's batch.kubernetes.io/job-name label.
	Job string
	// Image is the image of the pod's first container.
	Image string
	// Phase is Running until the pod ends, then Succeeded or Failed.
	Phase corev1.PodPhase
	// ExitCode is the first non-zero exit code (128+signal when killed, 128
	// when the runner could not start the container), 0 when all succeeded.
	ExitCode int32
	// Message is the failed container's termination message or the runner's
	// reason for failing it.
	Message string
	// Start and End bound the run; End is zero while it runs.
	Start, End time.Time
}

// Runner runs the Job pods of a cluster as local processes.
type Runner struct {
	opts    Options
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{}
	wg      sync.WaitGroup
	stop    sync.Once

	mu sync.Mutex
	// pods holds every pod started, by UID, with the function that kills it.
	pods map[types.UID]context.CancelFunc
	runs []Run
}

// Start watches the cluster's Job pods and runs those scheduled until Stop is
// called or ctx ends.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*Runner, error) {
	if opts.StateDir == "" {
		return nil, errors.New("jobrunner: Options.StateDir is required")
	}
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: state dir: %w", err)
	}
	opts.StateDir = stateDir
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if err := makeStateDir(stateDir); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: client: %w", err)
	}
	r := &Runner{
		opts:   opts,
		client: client,
		slots:  make(chan struct{}, maxParallel),
		pods:   map[types.UID]context.CancelFunc{},
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	if err := r.watch(); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// makeStateDir creates the state directory and its parts, searchable by the
// users containers may run as.
func makeStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jobrunner: state dir: %w", err)
	}
	for _, sub := range []string{"logs", "pods", "claims"} {
		if err := mkdirMode(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("jobrunner: state dir: %w", err)
		}
	}
	return nil
}

// watch starts the pod informer and waits for its first list.
func (r *Runner) watch() error {
	r.factory = informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = JobNameLabel }))
	informer := r.factory.Core().V1().Pods().Informer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.observe,
		UpdateFunc: func(_, obj any) { r.observe(obj) },
		DeleteFunc: r.deleted,
	})
	if err != nil {
		return fmt.Errorf("jobrunner: watching pods: %w", err)
	}
	r.factory.Start(r.ctx.Done())
	syncCtx, cancel := context.WithTimeout(r.ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		return errors.New("jobrunner: timed out listing pods")
	}
	return nil
}

// Stop kills the running processes and waits until every goroutine of the
// Runner has ended. The pods it was running keep their last status.
func (r *Runner) Stop() {
	r.stop.Do(func() {
		r.mu.Lock()
		r.cancel()
		r.mu.Unlock()
		if r.factory != nil {
			r.factory.Shutdown()
		}
		r.wg.Wait()
	})
}

// Runs returns a record of every pod the Runner started, in start order.
func (r *Runner) Runs() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

// ClaimDir is the local directory that holds the data of the
// PersistentVolumeClaim claim in namespace.
func ClaimDir(stateDir, namespace, claim string) string {
	return filepath.Join(stateDir, "claims", namespace, claim)
}

// Volume returns a PersistentVolume bound in advance to claim (by its
// claimRef) with the claim's size, access modes, volume mode and storage
// class, for the volume controller to bind. Its hostPath is the claim's
// ClaimDir, for people reading it: nothing mounts it.
func (r *Runner) Volume(claim *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	modes := claim.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	class := ""
	if claim.Spec.StorageClassName != nil {
		class = *claim.Spec.StorageClassName
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			// Namespaces hold no dots, so the name is unique.
			Name:   "jobrunner." + claim.Namespace + "." + claim.Name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "jobrunner"},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   modes,
			VolumeMode:                    claim.Spec.VolumeMode,
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: ClaimDir(r.opts.StateDir, claim.Namespace, claim.Name)},
			},
		},
	}
}

// BindClaim creates the PersistentVolume of Volume(claim), so that pods
// mounting the claim can be scheduled. A volume already there is kept.
func (r *Runner) BindClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	pv := r.Volume(claim)
	_, err := r.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("jobrunner: creating volume %s: %w", pv.Name, err)
	}
	return nil
}

// observe starts a pod that is ready to run, and kills one being deleted.
func (r *Runner) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		r.abort(pod.UID)
		return
	}
	if !runnable(pod) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.pods[pod.UID]; seen || r.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.pods[pod.UID] = cancel
	r.wg.Go(func() {
		defer cancel()
		r.runPod(ctx, pod.DeepCopy())
	})
}

// deleted kills the processes of a pod that is gone.
func (r *Runner) deleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		r.abort(pod.UID)
	}
}

// abort kills the processes of a pod, if it runs.
func (r *Runner) abort(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel, ok := r.pods[uid]; ok {
		cancel()
	}
}

// runnable reports whether a pod waits for a kubelet to run it.
func runnable(pod *corev1.Pod) bool {
	_, isJob := pod.Labels[JobNameLabel]
	pending := pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending
	return isJob && pending && pod.Spec.NodeName != "" && pod.DeletionTimestamp == nil
}

// runPod runs a pod once a slot is free, then writes its final status.
func (r *Runner) runPod(ctx context.Context, pod *corev1.Pod) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-r.slots }()
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	i := r.record(pod, start)
	results := r.execute(ctx, pod, start)
	out := summarize(pod, results)
	r.finish(i, out)
	r.opts.Logf("jobrunner: pod %s/%s (job %s) %s, exit code %d", pod.Namespace, pod.Name,
		pod.Labels[JobNameLabel], out.phase, out.exitCode)
	if r.ctx.Err() != nil {
		return // stopping: the pod keeps its last status
	}
	err := r.updateStatus(r.ctx, pod, finishedStatus(pod, start, results, out))
	if err != nil && ctx.Err() == nil && !errors.Is(err, errGone) {
		r.opts.Logf("jobrunner: pod %s/%s: writing the final status: %v", pod.Namespace, pod.Name, err)
	}
}

// execute runs the containers of a pod and reports how each that ran ended.
func (r *Runner) execute(ctx context.Context, pod *corev1.Pod, start time.Time) []containerResult {
	first := firstContainer(pod)
	logFile, err := r.openLog(pod)
	if err != nil {
		return []containerResult{failure(first, time.Now(), err)}
	}
	defer logFile.Close() //nolint:errcheck // written by the processes only
	ws, err := r.newWorkspace(ctx, pod)
	defer ws.remove()
	if err != nil {
		return []containerResult{failure(first, time.Now(), err)}
	}
	var results []containerResult
	for i := range pod.Spec.InitContainers {
		res := r.runContainer(ctx, pod, &pod.Spec.InitContainers[i], ws, logFile)
		results = append(results, res)
		if res.exitCode != 0 {
			return results
		}
	}
	err = r.updateStatus(ctx, pod, runningStatus(pod, start, results))
	if err != nil && ctx.Err() == nil && !errors.Is(err, errGone) {
		r.opts.Logf("jobrunner: pod %s/%s: writing the Running status: %v", pod.Namespace, pod.Name, err)
	}
	for i := range pod.Spec.Containers {
		res := r.runContainer(ctx, pod, &pod.Spec.Containers[i], ws, logFile)
		results = append(results, res)
		if res.exitCode != 0 {
			break
		}
	}
	return results
}

// firstContainer is the container that runs first, blamed for failures that
// come before any container.
func firstContainer(pod *corev1.Pod) *corev1.Container {
	if len(pod.Spec.InitContainers) > 0 {
		return &pod.Spec.InitContainers[0]
	}
	return &pod.Spec.Containers[0]
}

// openLog creates the pod's log file, which collects the output of all its
// containers one after another.
func (r *Runner) openLog(pod *corev1.Pod) (*os.File, error) {
	path := filepath.Join(r.opts.StateDir, "logs", pod.Namespace+"_"+pod.Name+".log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: log file: %w", err)
	}
	return f, nil
}

// outcome sums up how a pod ended.
type outcome struct {
	phase    corev1.PodPhase
	exitCode int32
	// message is the failed container's message.
	message string
	// runnerFailure is set when the runner, not the process, failed the pod.
	runnerFailure bool
}

// summarize says how a pod ended from the results of its containers.
func summarize(pod *corev1.Pod, results []containerResult) outcome {
	for _, res := range results {
		if res.exitCode != 0 {
			return outcome{phase: corev1.PodFailed, exitCode: res.exitCode, message: res.message, runnerFailure: res.runnerFailure}
		}
	}
	if len(results) < len(pod.Spec.InitContainers)+len(pod.Spec.Containers) {
		return outcome{phase: corev1.PodFailed, exitCode: 128, message: "jobrunner: not every container ran"}
	}
	return outcome{phase: corev1.PodSucceeded}
}

// record notes that a pod starts and returns the index of its Run.
func (r *Runner) record(pod *corev1.Pod, start time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, Run{
		Namespace: pod.Namespace,
		Pod:       pod.Name,
		Job:       pod.Labels[JobNameLabel],
		Image:     pod.Spec.Containers[0].Image,
		Phase:     corev1.PodRunning,
		Start:     start,
	})
	return len(r.runs) - 1
}

// finish completes the Run at index i.
func (r *Runner) finish(i int, out outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := &r.runs[i]
	run.Phase, run.ExitCode, run.Message, run.End = out.phase, out.exitCode, out.message, time.Now()
}

// errGone says the pod was deleted, or replaced by another of the same name.
var errGone = errors.New("pod is gone")

// statusBackoff spaces the retries of a status write.
var statusBackoff = wait.Backoff{Steps: 8, Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1, Cap: 2 * time.Second}

// updateStatus changes the status of the pod's latest version, retrying on
// conflicts and on an overloaded server.
func (r *Runner) updateStatus(ctx context.Context, pod *corev1.Pod, mutate func(*corev1.PodStatus)) error {
	pods := r.client.CoreV1().Pods(pod.Namespace)
	retriable := func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) ||
			apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err)
	}
	return retry.OnError(statusBackoff, retriable, func() error {
		current, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && current.UID != pod.UID) {
			return errGone
		}
		if err != nil {
			return err
		}
		mutate(&current.Status)
		_, err = pods.UpdateStatus(ctx, current, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return errGone
		}
		return err
	})
}

// runningStatus marks a pod Running, its init containers (which all
// succeeded) terminated and its containers running and ready.
func runningStatus(pod *corev1.Pod, start time.Time, inits []containerResult) func(*corev1.PodStatus) {
	return func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase = corev1.PodRunning
		st.StartTime = new(metav1.NewTime(start))
		setAddresses(st)
		for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			setCondition(st, t, corev1.ConditionTrue, "", now)
		}
		st.InitContainerStatuses = containerStatuses(pod.Spec.InitContainers, inits, "")
		st.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
	}
}

// finishedStatus marks a pod Succeeded or Failed, with the end of each
// container that ran.
func finishedStatus(pod *corev1.Pod, start time.Time, results []containerResult, out outcome) func(*corev1.PodStatus) {
	return func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase = out.phase
		if out.runnerFailure {
			st.Message = out.message
		}
		if st.StartTime == nil {
			st.StartTime = new(metav1.NewTime(start))
		}
		setAddresses(st)
		initialized := corev1.ConditionTrue
		for _, c := range pod.Spec.InitContainers {
			if res, ok := find(results, c.Name); !ok || res.exitCode != 0 {
				initialized = corev1.ConditionFalse
			}
		}
		setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", now)
		setCondition(st, corev1.PodInitialized, initialized, "", now)
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", now)
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", now)
		st.InitContainerStatuses = containerStatuses(pod.Spec.InitContainers, results, "PodInitializing")
		st.ContainerStatuses = containerStatuses(pod.Spec.Containers, results, "PodInitializing")
	}
}

// containerStatuses reports the containers that ran as terminated and the
// others as waiting for the reason given.
func containerStatuses(containers []corev1.Container, results []containerResult, waiting string) []corev1.ContainerStatus {
	statuses := make([]corev1.ContainerStatus, 0, len(containers))
	for _, c := range containers {
		st := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(false)}
		if res, ok := find(results, c.Name); ok {
			st.State.Terminated = &corev1.ContainerStateTerminated{
				ExitCode:   res.exitCode,
				Reason:     res.reason,
				Message:    res.message,
				StartedAt:  metav1.NewTime(res.started),
				FinishedAt: metav1.NewTime(res.finished),
			}
		} else {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		statuses = append(statuses, st)
	}
	return statuses
}

// find returns the result of the named container.
func find(results []containerResult, name string) (containerResult, bool) {
	for _, res := range results {
		if res.name == name {
			return res, true
		}
	}
	return containerResult{}, false
}

// setAddresses reports the local host as the pod's node and address.
func setAddresses(st *corev1.PodStatus) {
	st.HostIP, st.PodIP = localIP, localIP
	st.HostIPs = []corev1.HostIP{{IP: localIP}}
	st.PodIPs = []corev1.PodIP{{IP: localIP}}
}

// setCondition sets a pod condition, moving its transition time only when
// its status changes.
func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, reason string, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason = status, reason
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
}
