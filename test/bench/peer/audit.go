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

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// calls are one identity's API requests: all of them, and the writes.
type calls struct {
	Requests int `json:"requests"`
	Writes   int `json:"writes"`
}

// auditOffset is where the audit log ends now.
func (b *bench) auditOffset() int64 {
	fi, err := os.Stat(b.auditLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// callsSince counts each audited identity's requests after offset.
func (b *bench) callsSince(offset int64) (map[string]calls, error) {
	f, err := os.Open(b.auditLog)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	out := map[string]calls{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			User struct {
				Username string `json:"username"`
			} `json:"user"`
			Verb string `json:"verb"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		c := out[e.User.Username]
		c.Requests++
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
			c.Writes++
		}
		out[e.User.Username] = c
	}
	return out, sc.Err()
}

// procStats reads a process' peak resident memory (VmHWM, bytes) and the
// CPU seconds it has used.
func procStats(pid int) (hwm int64, cpu float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			hwm = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return hwm, (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}
