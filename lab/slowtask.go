package main

// Long tasks: a consolidation on a big, busy disk takes hours on ESXi, and
// its task reports info.progress as it goes (vSphere API, TaskInfo.progress:
// "Task progress, in percent, if the task is running and is able to report
// progress"). The control endpoint makes a VM's RemoveSnapshot_Task run
// slowly: it returns a running task at once, raises info.progress in steps,
// and only then removes the snapshot; or stops rising at a given percent and
// stays running until the setting is deleted (a stuck task).

import (
	"net/http"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// slowSetting: steps of stepMs each; stallAt > 0: progress stops there until release closes.
type slowSetting struct {
	Steps   int   `json:"steps"`
	StepMs  int64 `json:"stepMs"`
	StallAt int   `json:"stallAt,omitempty"`
	release chan struct{}
}

type slowTasks struct {
	mu  sync.Mutex
	vms map[string]*slowSetting
}

func (s *slowTasks) get(vm string) *slowSetting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vms[vm]
}

func (s *slowTasks) set(vm string, v *slowSetting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vms == nil {
		s.vms = map[string]*slowSetting{}
	}
	if old := s.vms[vm]; old != nil {
		close(old.release)
	}
	if v == nil {
		delete(s.vms, vm)
		return
	}
	s.vms[vm] = v
}

// runSlowTask is runTask for a task that takes time: the method returns a
// running task, progress rises in a goroutine (not under the VM's lock), and
// fn runs under the lock at the end.
func runSlowTask(obj mo.Reference, vm *LabVM, name string, s *slowSetting, fn func() (types.AnyType, *taskFault)) types.ManagedObjectReference {
	task := beginTask(obj, vm.Self, vm.Name, name)
	vm.busy = task.Self
	go func() {
		for i := 1; i <= s.Steps; i++ {
			p := int32(i * 100 / (s.Steps + 1))
			if s.StallAt > 0 && p >= int32(s.StallAt) {
				simulator.Map.Update(task, []types.PropertyChange{{Name: "info.progress", Val: int32(s.StallAt)}})
				<-s.release
				break
			}
			time.Sleep(time.Duration(s.StepMs) * time.Millisecond)
			simulator.Map.Update(task, []types.PropertyChange{{Name: "info.progress", Val: p}})
		}
		vm.Lock()
		res, f := fn()
		vm.busy = types.ManagedObjectReference{}
		vm.Unlock()
		finishTask(task, res, f)
	}()
	return task.Self
}

// taskInProgress: vSphere runs one such task of a VM at a time; another
// fails with TaskInProgress ("Another task is already in progress.").
func (vm *LabVM) taskInProgress() *taskFault {
	if vm.busy == (types.ManagedObjectReference{}) {
		return nil
	}
	return &taskFault{&types.TaskInProgress{Task: vm.busy}, "Another task is already in progress."}
}

func setSlowTasks(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	vm := lookupVM(lab, w, p)
	if vm == nil {
		return
	}
	if r.Method == http.MethodDelete {
		lab.slow.set(vm.Name, nil)
		reply(w, map[string]string{"vm": vm.Name})
		return
	}
	steps, err := intParam(r, "steps", -1)
	var stepMs, stallAt int64
	if err == nil {
		stepMs, err = intParam(r, "stepMs", -1)
	}
	if err == nil {
		stallAt, err = intParam(r, "stallAt", 0)
	}
	if err == nil && (steps < 1 || stepMs < 1 || stallAt < 0 || stallAt > 99) {
		err = errBadSlow
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	s := &slowSetting{Steps: int(steps), StepMs: stepMs, StallAt: int(stallAt), release: make(chan struct{})}
	lab.slow.set(vm.Name, s)
	reply(w, s)
}

var errBadSlow = simpleError("steps and stepMs must be at least 1, stallAt between 1 and 99 (0: no stall)")

type simpleError string

func (e simpleError) Error() string { return string(e) }
