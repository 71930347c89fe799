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

package controllers

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

// postgresPod makes a ready pod labelled app=pg that mounts claim.
func postgresPod(ctx context.Context, ns, name, claim string) {
	GinkgoHelper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "pg"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "postgres", Image: "postgres:15"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		},
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	Expect(k8sClient.Status().Update(ctx, p)).To(Succeed())
}

// postgresClaim makes claim name, bound with capacity when it is not empty.
func postgresClaim(ctx context.Context, ns, name, capacity string) {
	GinkgoHelper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	if capacity != "" {
		pvc.Status.Phase = corev1.ClaimBound
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)}
		Expect(k8sClient.Status().Update(ctx, pvc)).To(Succeed())
	}
}

var _ = Describe("Finding the volume that holds the database server's data", func() {
	upgradeIn := func(ns, host, claim string) *scope {
		u := &upgradev1alpha1.DifyUpgrade{ObjectMeta: metav1.ObjectMeta{Name: "u", Namespace: ns},
			Spec: upgradev1alpha1.DifyUpgradeSpec{TargetVersion: "1.11.1", Release: "dify",
				Database: &upgradev1alpha1.DatabaseSpec{Host: host, VolumeClaimName: claim,
					CredentialsSecret: upgradev1alpha1.DatabaseCredentials{Name: "db"}}}}
		u.SetDefaults()
		return newScope(context.Background(), u, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	}
	r := func() *DifyUpgradeReconciler { return &DifyUpgradeReconciler{Client: k8sClient} }

	It("takes the one claim the ready pods of the host's Service mount, in every form of the Service's name", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "pg", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "pg"}, Ports: []corev1.ServicePort{{Port: 5432}}}})).To(Succeed())
		postgresPod(ctx, ns, "pg-0", "data-pg-0")
		postgresClaim(ctx, ns, "data-pg-0", "20Gi")
		for _, host := range []string{"pg", "pg." + ns, "pg." + ns + ".svc", "pg." + ns + ".svc.cluster.local"} {
			v, err := r().serverVolume(ctx, upgradeIn(ns, host, ""))
			Expect(err).NotTo(HaveOccurred())
			Expect(v.Unknown).To(BeEmpty(), host)
			Expect(v.Claim).To(Equal("data-pg-0"), host)
			Expect(v.Capacity).To(Equal(int64(20 << 30)))
			Expect(v.FoundBy).To(ContainSubstring("the only claim the ready pods of Service pg mount"))
		}

		By("not guessing when a second ready pod mounts a claim of its own")
		postgresPod(ctx, ns, "pg-1", "data-pg-1")
		v, err := r().serverVolume(ctx, upgradeIn(ns, "pg", ""))
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Claim).To(BeEmpty())
		Expect(v.Unknown).To(ContainSubstring("mount several claims (data-pg-0, data-pg-1)"))

		By("taking spec.database.volumeClaimName over what the host would find")
		postgresClaim(ctx, ns, "pgdata", "")
		v, err = r().serverVolume(ctx, upgradeIn(ns, "pg", "pgdata"))
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Claim).To(Equal("pgdata"))
		Expect(v.FoundBy).To(Equal("spec.database.volumeClaimName"))
		Expect(v.Unknown).To(ContainSubstring("has no capacity yet"), "a claim not bound has no capacity to judge")
		v, err = r().serverVolume(ctx, upgradeIn(ns, "pg", "nowhere"))
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Missing).To(BeTrue())
	})

	It("knows no volume for a host outside the namespace's Services", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		for host, why := range map[string]string{
			"10.1.2.3":                       "host 10.1.2.3 names no Service of namespace " + ns,
			"db.eu-west-1.rds.amazonaws.com": "names no Service",
			"pg":                             "host pg names no Service of namespace " + ns,
			"pg.another-namespace.svc":       "names no Service",
		} {
			v, err := r().serverVolume(ctx, upgradeIn(ns, host, ""))
			Expect(err).NotTo(HaveOccurred())
			Expect(v.Claim).To(BeEmpty())
			Expect(v.Unknown).To(ContainSubstring(why))
		}
	})
})
