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
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradev1alpha1 "github.com/difyops/dify-upgrade-operator/api/v1alpha1"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/apps"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/dbjob"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/plan"
	"github.com/difyops/dify-upgrade-operator/controllers/internal/window"
)

// planOf describes what the upgrade will do, for people and for a dry run.
func planOf(spec *upgradev1alpha1.DifyUpgradeSpec, components []upgradev1alpha1.ComponentStatus,
	byName map[string]*apps.Workload, data window.Data) *upgradev1alpha1.PlanStatus {
	p := &upgradev1alpha1.PlanStatus{}
	for _, stage := range plan.Stages {
		var names []string
		for _, c := range components {
			if slices.Contains(stage, c.Name) {
				names = append(names, fmt.Sprintf("%s (%s %s)", c.Name, c.Kind, c.Deployment))
			}
		}
		if len(names) > 0 {
			p.Order = append(p.Order, strings.Join(names, ", "))
		}
	}
	p.CanarySteps = describeSteps(spec.Canary.Steps)
	backup := spec.Backup.Enabled == nil || *spec.Backup.Enabled
	if backup {
		p.BackupTargets = backupTargets(spec)
	}
	migrate := spec.Migration.Enabled == nil || *spec.Migration.Enabled
	switch {
	case !migrate:
		p.Migration = "not run (spec.migration.enabled is false): the new version must find the schema it needs"
	case spec.Database != nil && backup:
		p.PointOfNoReturn = true
		p.Migration = "runs once, before any pod of the new version takes traffic; from then on only the backup's restore takes the data back, which a rollback does"
	default:
		p.PointOfNoReturn = true
		p.Migration = "runs once, before any pod of the new version takes traffic; there is no database backup, so a rollback after it cannot take the data back"
	}
	d := window.Estimate(spec, components, byName, data)
	p.EstimatedDuration = &metav1.Duration{Duration: d}
	return p
}

// describeSteps says each canary step in a few words.
func describeSteps(steps []upgradev1alpha1.CanaryStep) []string {
	out := make([]string, 0, len(steps))
	for _, step := range steps {
		switch {
		case step.SetWeight != nil:
			out = append(out, fmt.Sprintf("setWeight %d", *step.SetWeight))
		case step.Pause != nil && step.Pause.Duration != nil:
			out = append(out, "pause "+step.Pause.Duration.Duration.String())
		case step.Pause != nil:
			out = append(out, "pause until promoted ("+upgradev1alpha1.AnnotationPromote+")")
		}
	}
	return out
}

// backupTargets are what the backup will hold.
func backupTargets(spec *upgradev1alpha1.DifyUpgradeSpec) []string {
	var out []string
	if db := spec.Database; db != nil {
		for _, name := range db.Databases {
			out = append(out, fmt.Sprintf("database %s at %s", name, db.Host))
		}
	}
	for _, v := range spec.Backup.Volumes {
		out = append(out, "volume "+v.ClaimName)
	}
	if c := spec.Backup.Config; c != nil {
		for _, name := range c.ConfigMaps {
			out = append(out, "ConfigMap "+name)
		}
		for _, name := range c.Secrets {
			out = append(out, "Secret "+name)
		}
	}
	return out
}

// describeData says in the plan what the backup holds and where it goes,
// and what the migration means for the way back.
func describeData(s *scope) {
	p := s.status().Plan
	if p == nil {
		return
	}
	spec := s.spec()
	p.BackupTargets = nil
	if *spec.Backup.Enabled {
		if db := dbOf(s); db != nil {
			for _, name := range db.databases {
				p.BackupTargets = append(p.BackupTargets, fmt.Sprintf("database %s at %s:%d", name, db.host, db.port))
			}
		}
		for _, v := range volumesOf(s) {
			p.BackupTargets = append(p.BackupTargets, "volume "+dbjob.VolumeName(dbjob.Volume{Claim: v.ClaimName, SubPath: v.SubPath}))
		}
		if c := spec.Backup.Config; c != nil {
			for _, name := range c.ConfigMaps {
				p.BackupTargets = append(p.BackupTargets, "ConfigMap "+name)
			}
			for _, name := range c.Secrets {
				p.BackupTargets = append(p.BackupTargets, "Secret "+name)
			}
		}
		if len(p.BackupTargets) > 0 {
			p.BackupTargets = append(p.BackupTargets, "to PersistentVolumeClaim "+destinationOf(s))
		}
	}
	if *spec.Migration.Enabled {
		p.PointOfNoReturn = true
		if dbOf(s) != nil && *spec.Backup.Enabled {
			p.Migration = "runs once, before any pod of the new version takes traffic; from then on only the backup's restore takes the data back, which a rollback does"
		} else {
			p.Migration = "runs once, before any pod of the new version takes traffic; there is no database backup, so a rollback after it cannot take the data back"
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
