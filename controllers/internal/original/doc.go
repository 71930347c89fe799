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

// Package original keeps, on each object the operator changes, what is needed
// to put it back: a label naming the DifyUpgrade that holds the object and an
// annotation with the original state, both written in the same update as the
// first change, so no change ever lands without its way back.
//
// It never calls the API: it reads and writes annotations and labels on
// objects the controller then writes.
package original
