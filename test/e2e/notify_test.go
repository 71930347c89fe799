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
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// hook is a webhook receiver on 127.0.0.1 that records every request and
// answers 500 to the first one of each path it is told to fail once.
type hook struct {
	mu       sync.Mutex
	requests []received
	failOnce map[string]bool
}

type received struct {
	path, contentType string
	body              map[string]any
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(data, &body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, received{r.URL.Path, r.Header.Get("Content-Type"), body})
	if h.failOnce[r.URL.Path] {
		h.failOnce[r.URL.Path] = false
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *hook) received(path string) []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []received
	for _, r := range h.requests {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// events are the JSON payloads' events, in the order they arrived.
func (h *hook) events() []string {
	got := h.received("/json")
	out := make([]string, 0, len(got))
	for _, r := range got {
		out = append(out, r.body["event"].(string))
	}
	return out
}

var _ = Describe("Notifications", func() {
	It("sends each moment once to every webhook, retrying a failed delivery, across a restart", func(ctx SpecContext) {
		h := &hook{failOnce: map[string]bool{"/json": true}}
		server := httptest.NewServer(h)
		DeferCleanup(server.Close)
		ns := installDify(ctx)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "hooks", Namespace: ns},
			StringData: map[string]string{"json": server.URL + "/json", "slack": server.URL + "/slack"},
		})).To(Succeed())
		u := upgradeTo(ns, "1.11.1", withIstio, withSteps(5, "gate", 100), func(u *upgradev1alpha1.DifyUpgrade) {
			u.Spec.Notify = &upgradev1alpha1.NotifySpec{Webhooks: []upgradev1alpha1.WebhookTarget{
				{Name: "team", Format: "JSON", URLSecret: upgradev1alpha1.SecretKey{Name: "hooks", Key: "json"}},
				{Name: "chat", Format: "Slack", URLSecret: upgradev1alpha1.SecretKey{Name: "hooks", Key: "slack"}},
			}}
		})
		Expect(k8sClient.Create(ctx, u)).To(Succeed())

		By("telling the start (after a 500, retried) and the gate")
		waitForGate(ctx, u)
		Eventually(h.events).WithContext(ctx).WithTimeout(30*time.Second).Should(Equal([]string{"Started", "Started", "WaitingForPerson"}),
			"the first Started got a 500 and was sent again")
		gate := h.received("/json")[2].body
		Expect(gate).To(And(
			HaveKeyWithValue("upgrade", u.Name), HaveKeyWithValue("namespace", ns), HaveKeyWithValue("release", "dify"),
			HaveKeyWithValue("from", "1.10.1"), HaveKeyWithValue("to", "1.11.1"), HaveKeyWithValue("phase", "Canary"),
			HaveKeyWithValue("reason", upgradev1alpha1.ReasonWaitingForPromotion),
			HaveKeyWithValue("link", "/apis/upgrade.difyops.io/v1alpha1/namespaces/"+ns+"/difyupgrades/"+u.Name),
			HaveKeyWithValue("message", ContainSubstring("upgrade.difyops.io/promote")),
		))
		Expect(h.received("/json")[0].contentType).To(Equal("application/json"))
		Eventually(func() []received { return h.received("/slack") }).WithContext(ctx).WithTimeout(10 * time.Second).Should(HaveLen(2))
		Expect(h.received("/slack")[1].body).To(HaveKeyWithValue("text", And(
			ContainSubstring("DifyUpgrade "+ns+"/"+u.Name), ContainSubstring("1.10.1 → 1.11.1"), ContainSubstring("waiting for a person"))))
		expectEvent(ctx, u, And(HaveField("Reason", "NotificationSent"), HaveField("Message", ContainSubstring("after 2 attempts"))))

		By("recording every delivery in status")
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
			g.Expect(u.Status.Notifications).To(HaveLen(4))
			g.Expect(u.Status.Notifications).To(HaveEach(HaveField("State", upgradev1alpha1.NotificationDelivered)))
			g.Expect(u.Status.Notifications).To(ContainElement(And(
				HaveField("Webhook", "team"), HaveField("Event", upgradev1alpha1.NotifyEvent("Started")), HaveField("Attempts", int32(2)))))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		By("sending nothing again after a restart")
		operator.stop()
		operator = startOperator(operatorCfg)
		Consistently(h.events).WithContext(ctx).WithTimeout(3 * time.Second).Should(HaveLen(3))

		By("telling the end")
		annotate(ctx, u, upgradev1alpha1.ActionPromote)
		waitForPhase(ctx, u, upgradev1alpha1.PhaseSucceeded, 2*time.Minute)
		Eventually(h.events).WithContext(ctx).WithTimeout(30 * time.Second).Should(Equal([]string{"Started", "Started", "WaitingForPerson", "Succeeded"}))
		Consistently(h.events).WithContext(ctx).WithTimeout(2 * time.Second).Should(HaveLen(4))

		By("keeping a record that outlives the DifyUpgrade")
		record := expectRecord(ctx, u, "Succeeded", ContainSubstring("1.10.1"), ContainSubstring("1.11.1"))
		Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(u), u) }).WithContext(ctx).
			Should(MatchError(ContainSubstring("not found")))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(record), record)).To(Succeed())
	})
})
