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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
)

func TestWindowOpen(t *testing.T) {
	// Saturdays 02:00 in Shanghai (UTC+8) for 4 hours: Friday 18:00-22:00 UTC.
	w := &upgradev1alpha1.WindowSpec{Schedule: "0 2 * * 6", Duration: metav1.Duration{Duration: 4 * time.Hour}, TimeZone: "Asia/Shanghai"}
	friday := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.UTC) }
	tests := []struct {
		now      time.Time
		open     bool
		nextOpen time.Time
	}{
		{friday(17, 59), false, friday(18, 0)},
		{friday(18, 0), true, friday(18, 0)},
		{friday(21, 59), true, friday(18, 0)},
		{friday(22, 0), false, friday(18, 0).AddDate(0, 0, 7)},
	}
	for _, tt := range tests {
		open, at, err := windowOpen(w, tt.now)
		if err != nil {
			t.Fatal(err)
		}
		if open != tt.open || !at.Equal(tt.nextOpen) {
			t.Errorf("windowOpen(%s) = %v, %s; want %v, %s", tt.now, open, at.UTC(), tt.open, tt.nextOpen)
		}
	}
	for _, bad := range []upgradev1alpha1.WindowSpec{
		{Schedule: "0 2 * * 6", TimeZone: "Mars/Olympus"},
		{Schedule: "0 25 * * *"},
	} {
		if _, _, err := windowOpen(&bad, friday(0, 0)); err == nil {
			t.Errorf("windowOpen(%+v) accepted a bad window", bad)
		}
	}
}

func TestWeightBefore(t *testing.T) {
	steps := []upgradev1alpha1.CanaryStep{
		{SetWeight: new(int32(5))}, {Pause: &upgradev1alpha1.CanaryPause{}}, {SetWeight: new(int32(20))}, {Pause: &upgradev1alpha1.CanaryPause{}},
	}
	for i, want := range []int32{0, 5, 5, 20, 20, 20} {
		if got := weightBefore(steps, i); got != want {
			t.Errorf("weightBefore(steps, %d) = %d, want %d", i, got, want)
		}
	}
}
