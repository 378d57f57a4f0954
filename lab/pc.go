package main

// The PropertyCollector as vCenter's pages: RetrievePropertiesEx answers at
// most `maxObjects` objects (and at most the lab's page) and a token for the
// rest, which ContinueRetrievePropertiesEx hands out page by page (vSphere API
// reference, RetrievePropertiesEx: "the server may return fewer objects …
// a token … ContinueRetrievePropertiesEx"). The simulator answers everything
// at once and has no ContinueRetrievePropertiesEx. Properties a
// `missing-property` fault names come back in `missingSet` instead of
// `propSet`, as a property the server could not read does.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	faultMissingProperty = "missing-property"
	defaultPCPage        = 1 // small, so every listing of several objects pages
)

type pcState struct {
	page          atomic.Int64 // most objects per answer; 0: no limit of the lab's
	continueCalls atomic.Int64
}

// pcLab lets the per-session collectors find the lab: the simulator makes
// each as a zero value of the registered type (Session.Get, by reflection).
var pcLab *Lab

// LabPropertyCollector replaces the simulator's; the simulator's methods
// (WaitForUpdatesEx, CreateFilter, …) stay as they are.
type LabPropertyCollector struct {
	simulator.PropertyCollector

	mu      sync.Mutex
	pending map[string][]types.ObjectContent // token → objects not handed out yet
	tokens  int
}

// installPropertyCollector puts the lab's collector in the simulator's place.
func (lab *Lab) installPropertyCollector(page int64) {
	pcLab = lab
	lab.pc.page.Store(page)
	ref := simulator.Map.Get(lab.client.ServiceContent.PropertyCollector).Reference()
	pc := &LabPropertyCollector{}
	pc.Self = ref
	simulator.Map.Put(pc)
}

func (pc *LabPropertyCollector) RetrievePropertiesEx(ctx *simulator.Context, r *types.RetrievePropertiesEx) soap.HasFault {
	res := pc.PropertyCollector.RetrievePropertiesEx(ctx, r)
	body, ok := res.(*methods.RetrievePropertiesExBody)
	if !ok || body.Res == nil || body.Res.Returnval == nil {
		return res
	}
	objs := body.Res.Returnval.Objects
	pcLab.applyMissing(objs)
	page := int(pcLab.pc.page.Load())
	if max := int(r.Options.MaxObjects); max > 0 && (page <= 0 || max < page) {
		page = max
	}
	rv := pc.pageOf(objs, page)
	body.Res.Returnval = &rv
	return body
}

// pageOf hands out the first page of objs and keeps the rest under a token.
func (pc *LabPropertyCollector) pageOf(objs []types.ObjectContent, page int) types.RetrieveResult {
	if page <= 0 || len(objs) <= page {
		return types.RetrieveResult{Objects: objs}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.pending == nil {
		pc.pending = map[string][]types.ObjectContent{}
	}
	pc.tokens++
	token := strconv.Itoa(pc.tokens)
	pc.pending[token] = objs[page:]
	return types.RetrieveResult{Token: token, Objects: objs[:page]}
}

func (pc *LabPropertyCollector) ContinueRetrievePropertiesEx(ctx *simulator.Context, r *types.ContinueRetrievePropertiesEx) soap.HasFault {
	body := &methods.ContinueRetrievePropertiesExBody{}
	pcLab.pc.continueCalls.Add(1)
	pc.mu.Lock()
	rest, ok := pc.pending[r.Token]
	delete(pc.pending, r.Token)
	pc.mu.Unlock()
	if !ok {
		body.Fault_ = simulator.Fault("The token is not valid or has been used.", &types.InvalidArgument{InvalidProperty: "token"})
		return body
	}
	body.Res = &types.ContinueRetrievePropertiesExResponse{Returnval: pc.pageOf(rest, int(pcLab.pc.page.Load()))}
	return body
}

func (pc *LabPropertyCollector) CancelRetrievePropertiesEx(ctx *simulator.Context, r *types.CancelRetrievePropertiesEx) soap.HasFault {
	pc.mu.Lock()
	delete(pc.pending, r.Token)
	pc.mu.Unlock()
	return &methods.CancelRetrievePropertiesExBody{Res: &types.CancelRetrievePropertiesExResponse{}}
}

// applyMissing moves the properties named by missing-property rules from
// propSet to missingSet, with the rule's fault.
func (lab *Lab) applyMissing(objs []types.ObjectContent) {
	for i := range objs {
		o := &objs[i]
		vm, kind := lab.ownerOf(o.Obj)
		if vm == "" {
			continue
		}
		rule, ok := lab.faults.takeIf(faultMissingProperty, vm, func(r faultRule) bool {
			return r.Object == kind && hasProp(o.PropSet, r.Path)
		})
		if !ok {
			continue
		}
		kept := o.PropSet[:0]
		for _, p := range o.PropSet {
			if p.Name == rule.Path || strings.HasPrefix(p.Name, rule.Path+".") {
				o.MissingSet = append(o.MissingSet, types.MissingProperty{Path: p.Name, Fault: missingFault(rule, o.Obj)})
				continue
			}
			kept = append(kept, p)
		}
		o.PropSet = kept
	}
}

func hasProp(props []types.DynamicProperty, path string) bool {
	for _, p := range props {
		if p.Name == path || strings.HasPrefix(p.Name, path+".") {
			return true
		}
	}
	return false
}

func missingFault(rule faultRule, obj types.ManagedObjectReference) types.LocalizedMethodFault {
	if rule.Fault == "NoPermission" {
		return types.LocalizedMethodFault{
			Fault:            &types.NoPermission{Object: obj, PrivilegeId: rule.Privilege},
			LocalizedMessage: "Permission to perform this operation was denied.",
		}
	}
	return types.LocalizedMethodFault{
		Fault:            &types.SystemError{Reason: injected("RetrievePropertiesEx")},
		LocalizedMessage: "A general system error occurred: " + injected("RetrievePropertiesEx"),
	}
}

// ownerOf names the lab VM an object is or belongs to ("vm" or "snapshot").
func (lab *Lab) ownerOf(ref types.ManagedObjectReference) (string, string) {
	switch ref.Type {
	case "VirtualMachine":
		for _, vm := range lab.allVMs() {
			if vm.Self == ref {
				return vm.Name, "vm"
			}
		}
	case "VirtualMachineSnapshot":
		if s, ok := simulator.Map.Get(ref).(*LabSnapshot); ok && s.vm != nil {
			return s.vm.Name, "snapshot"
		}
	}
	return "", ""
}

// parseMissingProperty reads a missing-property rule's parameters:
// path=P (required), object=vm|snapshot, fault=NoPermission|SystemError,
// privilege=ID (NoPermission's privilegeId, default System.Read).
func parseMissingProperty(r *http.Request, rule *faultRule) error {
	q := r.URL.Query()
	rule.Path, rule.Object, rule.Fault, rule.Privilege = q.Get("path"), q.Get("object"), q.Get("fault"), q.Get("privilege")
	if rule.Path == "" {
		return fmt.Errorf("path is required")
	}
	switch rule.Object {
	case "":
		rule.Object = "vm"
	case "vm", "snapshot":
	default:
		return fmt.Errorf("object must be vm or snapshot")
	}
	switch rule.Fault {
	case "":
		rule.Fault = "NoPermission"
	case "NoPermission", "SystemError":
	default:
		return fmt.Errorf("fault must be NoPermission or SystemError")
	}
	if rule.Privilege == "" && rule.Fault == "NoPermission" {
		rule.Privilege = "System.Read"
	}
	return nil
}

// Control routes of the property collector.
func pcRoutes() []route {
	return []route{
		{"GET", "/property-collector", "{page, continueCalls}: objects per RetrievePropertiesEx answer (0: all) and ContinueRetrievePropertiesEx calls so far", getPC},
		{"POST", "/property-collector", "?page=N: objects per answer from now on (0: all)", setPC},
	}
}

func getPC(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	reply(w, map[string]int64{"page": lab.pc.page.Load(), "continueCalls": lab.pc.continueCalls.Load()})
}

func setPC(lab *Lab, w http.ResponseWriter, r *http.Request, p params) {
	page, err := intParam(r, "page", -1)
	if err == nil && page < 0 {
		err = fmt.Errorf("page must be 0 or more")
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	lab.pc.page.Store(page)
	getPC(lab, w, r, p)
}
