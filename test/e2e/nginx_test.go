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

package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// difyIngress is the fixture's routing through ingress-nginx, as charts
// that route paths per Service ship it: the api's paths to dify-api, the
// plugin daemon's to its Service, the rest to dify-web. No ingress
// controller runs: the specs read the objects ingress-nginx would.
const difyIngress = `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: dify
  labels: {app.kubernetes.io/name: dify}
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 15m}
spec:
  ingressClassName: nginx
  tls: [{hosts: [dify.example.com], secretName: dify-tls}]
  rules:
  - host: dify.example.com
    http:
      paths:
      - {path: /console/api, pathType: Prefix, backend: {service: {name: dify-api, port: {number: 5001}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: dify-api, port: {number: 5001}}}}
      - {path: /e/, pathType: Prefix, backend: {service: {name: dify-plugin-daemon, port: {number: 5002}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: dify-web, port: {number: 3000}}}}
`

// chartProxy is the most used chart's routing, in our own words: an
// Ingress sending / to the release's nginx proxy (Service dify:80), whose
// configuration sends the api's paths to dify-api, /e/ to the plugin
// daemon and the rest to dify-web.
var chartProxy = []string{`
apiVersion: v1
kind: ConfigMap
metadata: {name: dify-proxy}
data:
  default.conf: |
    server {
      listen 80;
      location /console/api { proxy_pass http://dify-api:5001; }
      location /api { proxy_pass http://dify-api:5001; }
      location /v1 { proxy_pass http://dify-api:5001; }
      location /files { proxy_pass http://dify-api:5001; }
      location /e/ { proxy_pass http://dify-plugin-daemon:5002; }
      location / { proxy_pass http://dify-web:3000; }
    }
`, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-proxy
  labels: {app.kubernetes.io/name: dify, app.kubernetes.io/component: proxy}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: dify, app.kubernetes.io/component: proxy}
  template:
    metadata:
      labels: {app.kubernetes.io/name: dify, app.kubernetes.io/component: proxy}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
        volumeMounts: [{name: conf, mountPath: /etc/nginx/conf.d}]
      volumes: [{name: conf, configMap: {name: dify-proxy}}]
`, `
apiVersion: v1
kind: Service
metadata: {name: dify}
spec:
  selector: {app.kubernetes.io/name: dify, app.kubernetes.io/component: proxy}
  ports: [{port: 80, targetPort: 80}]
`, `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: dify}
spec:
  ingressClassName: nginx
  rules:
  - host: dify.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: dify, port: {number: 80}}}}]
`}

// proxyObjects are the proxy's ConfigMap data and Deployment spec, as
// JSON.
func proxyObjects(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-proxy"}, cm)).To(Succeed())
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-proxy"}, d)).To(Succeed())
	// The Deployment controller writes its revision annotation on its own
	// time: a snapshot taken just after the install may come before it.
	annotations := maps.Clone(d.Annotations)
	delete(annotations, "deployment.kubernetes.io/revision")
	if len(annotations) == 0 {
		annotations = nil
	}
	out := map[string]string{}
	for name, v := range map[string]any{"ConfigMap": []any{cm.Data, cm.Labels, cm.Annotations}, "Deployment": []any{d.Spec, d.Labels, annotations}} {
		raw, err := json.Marshal(v)
		Expect(err).NotTo(HaveOccurred())
		out[name] = string(raw)
	}
	return out
}

// installYAML creates an object in ns from YAML.
func installYAML(ctx context.Context, ns, doc string) {
	GinkgoHelper()
	obj := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(doc), &obj.Object)).To(Succeed())
	obj.SetNamespace(ns)
	Expect(k8sClient.Create(ctx, obj)).To(Succeed())
}

// ensureNginxClass makes the IngressClass ingress-nginx installs.
func ensureNginxClass(ctx context.Context) {
	GinkgoHelper()
	class := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}
	if err := k8sClient.Create(ctx, class); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

func withIngressNginx(u *upgradev1alpha1.DifyUpgrade) {
	u.Spec.Canary.IngressNginx = &upgradev1alpha1.IngressNginxCanary{Ingresses: []upgradev1alpha1.IngressNginxIngress{{Name: "dify"}}}
}

// nginxObjects are what the ingress-nginx canary must leave as it found
// them: the user's Ingress and the Services of api and web, each as JSON
// of its spec, labels and annotations.
func nginxObjects(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, obj := range []client.Object{&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "dify"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dify-api"}}, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dify-web"}}} {
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: obj.GetName()}, obj)).To(Succeed())
		var spec any
		switch o := obj.(type) {
		case *networkingv1.Ingress:
			spec = o.Spec
		case *corev1.Service:
			spec = o.Spec
		}
		raw, err := json.Marshal(map[string]any{"spec": spec, "labels": obj.GetLabels(), "annotations": obj.GetAnnotations()})
		Expect(err).NotTo(HaveOccurred())
		out[obj.GetName()] = string(raw)
	}
	return out
}

// expectNoCanaryIngress waits until the canary Ingress and Services are
// gone.
func expectNoCanaryIngress(ctx context.Context, ns string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-canary"}, &networkingv1.Ingress{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Ingress dify-canary: %v", err)
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
	expectNoCanaryServices(ctx, ns)
}

// canaryPaths reads the canary Ingress's paths: the Service each sends to,
// by path.
func canaryPaths(ing *networkingv1.Ingress) map[string]string {
	out := map[string]string{}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			out[rule.Host+p.Path] = p.Backend.Service.Name
		}
	}
	return out
}

// watchEndpoints watches the lowest count of ready endpoints of each
// Service.
func watchEndpoints(ctx context.Context, ns string, services ...string) *watcher {
	return watchLowest(func() (map[string]int, error) {
		out := map[string]int{}
		for _, svc := range services {
			n, err := readyEndpoints(ctx, ns, svc)
			if err != nil {
				return nil, err
			}
			out[svc] = n
		}
		return out, nil
	})
}

// behindTheProxy installs the fixture behind the chart's proxy, starts an
// upgrade at 20% behind a gate, and waits for the gate.
func behindTheProxy(ctx context.Context, change ...func(*upgradev1alpha1.DifyUpgrade)) (string, *upgradev1alpha1.DifyUpgrade, map[string]string, map[string]string) {
	GinkgoHelper()
	ensureNginxClass(ctx)
	ns := installDify(ctx)
	for _, doc := range chartProxy {
		installYAML(ctx, ns, doc)
	}
	before, proxyBefore := nginxObjects(ctx, ns), proxyObjects(ctx, ns)
	u := upgradeTo(ns, "1.11.1", append([]func(*upgradev1alpha1.DifyUpgrade){withIngressNginx, withSteps(20, "gate", 100)}, change...)...)
	Expect(k8sClient.Create(ctx, u)).To(Succeed())
	waitForGate(ctx, u)
	return ns, u, before, proxyBefore
}

// expectCanaryProxy proves the canary copy of the chart's proxy: its
// configuration sends to the canary Services, its Service reaches the
// canary proxy only, the proxy's Service the stable proxy only.
func expectCanaryProxy(ctx context.Context, ns string) {
	GinkgoHelper()
	conf := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-proxy-canary"}, conf)).To(Succeed())
	Expect(conf.Data["default.conf"]).To(And(ContainSubstring("proxy_pass http://dify-api-canary:5001;"), ContainSubstring("proxy_pass http://dify-web-canary:3000;"),
		ContainSubstring("proxy_pass http://dify-plugin-daemon:5002;")))
	Eventually(func(g Gomega) {
		g.Expect(endpointTracks(ctx, ns, "dify")).To(Equal(map[string]int{"stable": 1}), "the proxy's Service reaches the stable proxy only")
		g.Expect(endpointTracks(ctx, ns, "dify-canary")).To(Equal(map[string]int{"canary": 1}), "the canary proxy's Service")
		for _, svc := range []string{"dify-api", "dify-web"} {
			g.Expect(endpointTracks(ctx, ns, svc)).To(Equal(map[string]int{"stable": 2}), "Service %s", svc)
			g.Expect(endpointTracks(ctx, ns, svc+"-canary")).To(Equal(map[string]int{"canary": 1}), "Service %s-canary", svc)
		}
	}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())
}

// abortBehindTheProxy aborts u at the gate and proves the way back: the
// routing objects (read by routing) and the proxy as they were, the canary
// proxy and canaries gone, and the proxy's and components' Services
// serving at every observation.
func abortBehindTheProxy(ctx context.Context, ns string, u *upgradev1alpha1.DifyUpgrade, routing func() any, before any, proxyBefore map[string]string) {
	GinkgoHelper()
	w := watchEndpoints(ctx, ns, "dify", "dify-api", "dify-web")
	annotate(ctx, u, upgradev1alpha1.ActionAbort)
	waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
	Expect(routing()).To(Equal(before), "the routing objects and the Services byte-equal to what they were")
	Expect(proxyObjects(ctx, ns)).To(Equal(proxyBefore), "the proxy byte-equal to what it was")
	expectNoCanaryProxy(ctx, ns)
	expectNoCanaries(ctx, ns)
	lowest, samples := w.stop()
	// Three Services read per observation: a quick way back on a loaded
	// machine is seen a handful of times.
	Expect(samples).To(BeNumerically(">", 3))
	for _, svc := range []string{"dify", "dify-api", "dify-web"} {
		Expect(lowest).To(HaveKeyWithValue(svc, BeNumerically(">", 0)), "%s Service endpoints at every observation of the way back", svc)
	}
}

// expectNoCanaryProxy waits until the canary Ingress, Services and the
// canary copy of the proxy are gone.
func expectNoCanaryProxy(ctx context.Context, ns string) {
	GinkgoHelper()
	expectNoCanaryIngress(ctx, ns)
	Eventually(func(g Gomega) {
		for name, obj := range map[string]client.Object{"dify-canary": &corev1.Service{}, "dify-proxy-canary": &appsv1.Deployment{}} {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s: %v", obj, name, err)
		}
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-proxy-canary"}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ConfigMap dify-proxy-canary: %v", err)
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
}

var _ = Describe("Upgrading Dify through an ingress-nginx Ingress", Label("nginx"), func() {
	// atTheGate installs the fixture with the Ingress, starts an upgrade
	// at 20% behind a gate, and waits for the gate.
	atTheGate := func(ctx SpecContext, change ...func(*upgradev1alpha1.DifyUpgrade)) (string, *upgradev1alpha1.DifyUpgrade, map[string]string) {
		ensureNginxClass(ctx)
		ns := installDify(ctx)
		installYAML(ctx, ns, difyIngress)
		before := nginxObjects(ctx, ns)
		u := upgradeTo(ns, "1.11.1", append([]func(*upgradev1alpha1.DifyUpgrade){withIngressNginx, withSteps(20, "gate", 100)}, change...)...)
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForGate(ctx, u)
		return ns, u, before
	}

	It("sends 20% of the api's and web's paths to canary Services through a canary Ingress, and leaves no trace once Succeeded", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx)

		By("planning the route through the release's Services, found among the Ingress's paths")
		Expect(u.Status.Plan.Traffic).NotTo(BeNil())
		Expect(u.Status.Plan.Traffic.Provider).To(Equal(upgradev1alpha1.TrafficIngressNginx))
		Expect(u.Status.Plan.Traffic.Services).To(ConsistOf(
			And(HaveField("Component", upgradev1alpha1.ComponentAPI), HaveField("Service", "dify-api"), HaveField("CanaryService", "dify-api-canary")),
			And(HaveField("Component", upgradev1alpha1.ComponentWeb), HaveField("Service", "dify-web"), HaveField("CanaryService", "dify-web-canary"))))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "routing"), HaveField("Result", upgradev1alpha1.CheckPassed),
			HaveField("Message", ContainSubstring("class nginx (spec.ingressClassName), IngressClass of k8s.io/ingress-nginx")))))

		By("making a canary Ingress at weight 20 with the api's and web's paths, to the canary Services")
		canary := &networkingv1.Ingress{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-canary"}, canary)).To(Succeed())
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary", "true"))
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary-weight", "20"))
		Expect(canary.Annotations).To(HaveKeyWithValue(upgradev1alpha1.AnnotationUpgradeUID, string(u.UID)))
		Expect(canary.Annotations).NotTo(HaveKey("nginx.ingress.kubernetes.io/proxy-body-size"), "the user's other annotations are not copied")
		Expect(canary.Labels).To(HaveKeyWithValue(upgradev1alpha1.LabelUpgrade, u.Name))
		Expect(canary.Spec.IngressClassName).To(HaveValue(Equal("nginx")))
		Expect(canary.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"dify.example.com"}, SecretName: "dify-tls"}}))
		Expect(canaryPaths(canary)).To(Equal(map[string]string{
			"dify.example.com/console/api": "dify-api-canary",
			"dify.example.com/api":         "dify-api-canary",
			"dify.example.com/":            "dify-web-canary",
		}), "the plugin daemon's path is left to the user's Ingress")
		Expect(nginxObjects(ctx, ns)["dify"]).To(Equal(before["dify"]), "the user's Ingress is never changed")

		By("reaching only stable pods through the Services and only canary pods through the canary Services")
		Eventually(func(g Gomega) {
			for _, svc := range []string{"dify-api", "dify-web"} {
				g.Expect(endpointTracks(ctx, ns, svc)).To(Equal(map[string]int{"stable": 2}), "Service %s", svc)
				g.Expect(endpointTracks(ctx, ns, svc+"-canary")).To(Equal(map[string]int{"canary": 1}), "Service %s-canary", svc)
			}
		}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())

		By("going on when a person promotes")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		for name, image := range targetImages {
			Expect(container(deployment(ctx, ns, name)).Image).To(Equal(image), name)
		}
		Expect(nginxObjects(ctx, ns)).To(Equal(before), "the Ingress and the Services byte-equal to what they were")
		expectNoCanaryIngress(ctx, ns)
		expectNoCanaries(ctx, ns)
		Expect(u.Status.ExternalChanges).To(BeEmpty(), "the operator never mistakes its own writes for someone else's")
	})

	It("puts the Services back and deletes the canary Ingress when a person aborts at the gate, and the Services never stop serving", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx, withoutRestore)
		w := watchEndpoints(ctx, ns, "dify-api", "dify-web")

		annotate(ctx, u, upgradev1alpha1.ActionAbort)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseRolledBack, time.Minute)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhaseCanary))
		Expect(nginxObjects(ctx, ns)).To(Equal(before), "the Ingress and the Services byte-equal to what they were")
		expectNoCanaryIngress(ctx, ns)
		expectNoCanaries(ctx, ns)
		lowest, samples := w.stop()
		Expect(samples).To(BeNumerically(">", 10))
		Expect(lowest).To(HaveKeyWithValue("dify-api", BeNumerically(">", 0)), "api Service endpoints at every observation of the way back")
		Expect(lowest).To(HaveKeyWithValue("dify-web", BeNumerically(">", 0)), "web Service endpoints at every observation of the way back")
	})

	It("puts the Services back and deletes the canary objects when the DifyUpgrade is deleted at the gate, the canaries kept scaleDownDelay (10s by default) once the canary Ingress sends them nothing", func(ctx SpecContext) {
		ns, u, before := atTheGate(ctx, withoutRestore, func(u *upgradev1alpha1.DifyUpgrade) { u.Spec.Canary.ScaleDownDelay = nil })
		Expect(k8sClient.Delete(ctx, u)).To(Succeed())

		By("keeping the canary Deployment and its ready pods until status.canary.scaleDownAt, the canary Ingress at weight 0")
		var scaleDownAt time.Time
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Canary).NotTo(BeNil())
			g.Expect(u.Status.Canary.ScaleDownAt).NotTo(BeNil(), "the deletion keeps the time in status")
			scaleDownAt = u.Status.Canary.ScaleDownAt.Time
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(u.Status.Message).To(ContainSubstring("the canaries are deleted at"))
		Consistently(func(g Gomega) {
			ing := &networkingv1.Ingress{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-canary"}, ing)).To(Succeed())
			g.Expect(ing.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary-weight", "0"))
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-api-canary"}, d)).To(Succeed())
			g.Expect(d.DeletionTimestamp).To(BeNil())
			g.Expect(d.Status.ReadyReplicas).To(BeNumerically(">", 0))
		}).WithContext(ctx).WithTimeout(time.Until(scaleDownAt) - 500*time.Millisecond).WithPolling(250 * time.Millisecond).Should(Succeed())

		By("then deleting them and letting the DifyUpgrade go")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue())
		Expect(nginxObjects(ctx, ns)).To(Equal(before), "the Ingress and the Services byte-equal to what they were")
		expectNoCanaryIngress(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("sends 20% of / to a canary copy of the chart's nginx proxy, which sends to the canary Services, and leaves no trace once Succeeded", func(ctx SpecContext) {
		ns, u, before, proxyBefore := behindTheProxy(ctx)

		By("planning the route through the proxy, and the Services its configuration names")
		Expect(u.Status.Plan.Traffic.Proxy).To(Equal(&upgradev1alpha1.TrafficProxy{Service: "dify", Deployment: "dify-proxy", ConfigMap: "dify-proxy"}))
		Expect(u.Status.Plan.Traffic.Services).To(ConsistOf(
			And(HaveField("Service", "dify-api"), HaveField("FoundBy", ContainSubstring("ConfigMap dify-proxy"))),
			HaveField("Service", "dify-web")))

		By("sending 20% of / to the canary proxy, whose configuration sends to the canary Services")
		canary := &networkingv1.Ingress{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dify-canary"}, canary)).To(Succeed())
		Expect(canary.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/canary-weight", "20"))
		Expect(canaryPaths(canary)).To(Equal(map[string]string{"dify.example.com/": "dify-canary"}))
		expectCanaryProxy(ctx, ns)

		By("going on when a person promotes")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Expect(nginxObjects(ctx, ns)).To(Equal(before), "the Ingress and the Services byte-equal to what they were")
		Expect(proxyObjects(ctx, ns)).To(Equal(proxyBefore), "the proxy byte-equal to what it was")
		expectNoCanaryProxy(ctx, ns)
		expectNoCanaries(ctx, ns)
	})

	It("puts everything back and deletes the canary proxy when a person aborts at the gate, and the proxy and Services never stop serving", func(ctx SpecContext) {
		ns, u, before, proxyBefore := behindTheProxy(ctx, withoutRestore)
		abortBehindTheProxy(ctx, ns, u, func() any { return nginxObjects(ctx, ns) }, before, proxyBefore)
	})

	It("refuses in Precheck the tags and pins ingress-nginx cannot express (a cookie tag not \"always\", pins on paths sent straight to api and web), changing nothing", func(ctx SpecContext) {
		ensureNginxClass(ctx)
		ns := installDify(ctx)
		installYAML(ctx, ns, difyIngress)
		before, deployments := nginxObjects(ctx, ns), snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIngressNginx, withSteps(20, "gate", 100), withStickySessions, func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Canary.Match = &upgradev1alpha1.CanaryMatch{Cookies: []upgradev1alpha1.CanaryCookieMatch{{Name: "dify-beta", Value: "yes"}}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring(`ingress-nginx sends a request to the canary by cookie only when its value is "always"`))
		Expect(u.Status.Message).To(ContainSubstring("canary.stickySessions through ingress-nginx needs the release's nginx proxy behind the Ingress"))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "sessions"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(nginxObjects(ctx, ns)).To(Equal(before))
		Expect(snapshot(ctx, ns).deployments).To(Equal(deployments.deployments))
		expectNoCanaryIngress(ctx, ns)
	})

	It("refuses in Precheck an Ingress that sends neither to the release's Services nor to a proxy of them, changing nothing", func(ctx SpecContext) {
		ensureNginxClass(ctx)
		ns := installDify(ctx)
		// The most used chart's shape, / to <release>:80, but nothing
		// behind that Service that routes to api and web.
		installYAML(ctx, ns, `
apiVersion: v1
kind: Service
metadata: {name: dify}
spec:
  selector: {app.kubernetes.io/name: dify, app.kubernetes.io/component: proxy}
  ports: [{port: 80, targetPort: 80}]
`)
		installYAML(ctx, ns, `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: dify}
spec:
  ingressClassName: nginx
  rules:
  - host: dify.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: dify, port: {number: 80}}}}]
`)
		before := nginxObjects(ctx, ns)
		deployments := snapshot(ctx, ns)
		u := upgradeTo(ns, "1.11.1", withIngressNginx, withSteps(20, "gate", 100))
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		waitForPhase(ctx, u, upgradev1alpha1.PhaseFailed, 30*time.Second)
		Expect(u.Status.FailedPhase).To(Equal(upgradev1alpha1.PhasePrecheck))
		Expect(u.Status.Message).To(ContainSubstring("Ingress dify sends to none of the Services that select the api pods (dify-api)"))
		Expect(u.Status.Message).To(ContainSubstring("its paths send to Service dify only; and no Service the Ingresses send to runs an nginx proxy of the release"))
		Expect(u.Status.Checks).To(ContainElement(And(HaveField("Name", "routing"), HaveField("Result", upgradev1alpha1.CheckFailed))))
		Expect(nginxObjects(ctx, ns)).To(Equal(before))
		expectNoCanaryIngress(ctx, ns)
		expectRestored(ctx, ns, deployments)
	})
})
