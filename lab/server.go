package main

// The HTTPS side: vCenter's /sdk (the simulator's SOAP service behind a
// session gate) and /folder (datastore files, with Range support, the
// session cookie required, and injectable connection drops).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/vim25/soap"
)

// newCertificate makes a fresh self-signed certificate for 127.0.0.1, so
// clients must pin the thumbprint the lab prints, as with a real vCenter.
func newCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vmbkp-lab", Organization: []string{"vmbkp lab"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// thumbprint formats a digest like vSphere: uppercase hex pairs joined by ":".
func thumbprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func thumbprints(der []byte) (string, string) {
	s1 := sha1.Sum(der)
	s256 := sha256.Sum256(der)
	return thumbprint(s1[:]), thumbprint(s256[:])
}

// sessions is the set of SOAP sessions the lab honours. The simulator lets
// some calls (RetrievePropertiesEx, …) through without a session and has no
// way to expire sessions on demand, so the lab decides itself.
type sessions struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (s *sessions) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[key] = true
}

func (s *sessions) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}

func (s *sessions) valid(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return key != "" && s.keys[key]
}

func (s *sessions) expireAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.keys)
	s.keys = nil
	return n
}

// Methods that need no session on vCenter.
var anonymousMethods = map[string]bool{
	"RetrieveServiceContent": true, "Login": true, "LoginByToken": true, "LoginExtensionByCertificate": true,
	"LoginExtensionBySubjectName": true, "LoginBySSPI": true, "CloneSession": true,
}

var loginMethods = map[string]bool{
	"Login": true, "LoginByToken": true, "LoginExtensionByCertificate": true, "CloneSession": true,
}

func sessionCookie(r *http.Request) string {
	if c, err := r.Cookie(soap.SessionCookieName); err == nil {
		return strings.Trim(c.Value, `"`)
	}
	return ""
}

// dropSessionCookie removes the session cookie so the simulator sees no session.
func dropSessionCookie(r *http.Request) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != soap.SessionCookieName {
			r.AddCookie(c)
		}
	}
}

// sdkGate enforces sessions in front of the simulator's SOAP handler.
type sdkGate struct {
	lab  *Lab
	next http.Handler
}

func (g *sdkGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		g.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	method, thisType, thisValue := soapCall(body)
	key := sessionCookie(r)
	if !g.lab.sessions.valid(key) || loginMethods[method] {
		dropSessionCookie(r) // a login always starts a new session
		key = ""
	}
	if key == "" && !anonymousMethods[method] {
		writeNotAuthenticated(w, thisType, thisValue)
		return
	}
	// A lab user's login goes on as the administrator's; the lab keeps whose session it is (roles.go).
	var loginAs *labUserAccount
	if method == "Login" {
		if name, password := loginOf(body); name != labUser {
			if acct := g.lab.users.lookup(name); acct != nil && acct.password == password {
				loginAs, body = acct, adminLogin(g.lab.password)
			}
		}
	}
	if n, ok := g.lab.denied(key, method, thisType, thisValue, body); ok {
		writeNoPermission(w, n)
		return
	}
	if method == "CreateVM_Task" && thisType == "Folder" {
		body = g.lab.routeCreateVM(body, thisValue) // see folder.go
	}
	if method == "ImportVApp" && thisType == "ResourcePool" {
		body = g.lab.routeImportVApp(body, thisValue) // see nfcimport.go
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	cw := &sdkWriter{ResponseWriter: w}
	g.next.ServeHTTP(cw, r)
	if cw.session != "" {
		g.lab.sessions.add(cw.session)
		if loginAs != nil {
			g.lab.users.bind(cw.session, loginAs)
		}
	}
	if method == "Logout" && key != "" && cw.status == http.StatusOK {
		g.lab.sessions.remove(key)
	}
}

// sdkWriter notes the session a login creates and gives its cookie Path=/
// so cookie jars send it to /folder too; and it writes typed values the
// way vCenter does (see vcenterXML).
type sdkWriter struct {
	http.ResponseWriter
	session string
	status  int
}

func (c *sdkWriter) WriteHeader(code int) {
	c.status = code
	h := c.Header()
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == soap.SessionCookieName {
			c.session = ck.Value
			ck.Path = "/"
			h.Del("Set-Cookie")
			h.Add("Set-Cookie", ck.String())
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *sdkWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if _, err := c.ResponseWriter.Write(vcenterXML(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

var (
	goXSIDecl = []byte(` xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance"`)
	goXSIType = []byte(` XMLSchema-instance:type="`)
	vcXSIType = []byte(` xsi:type="`)
)

// vcenterXML rewrites Go's encoding of xsi:type (a prefix declared on each
// element) into vCenter's (xsi, declared on the envelope), so a client that
// works with the lab works with vCenter. The simulator writes a response in
// one Write, and both patterns hold a raw '"', which never occurs in
// escaped text, so the rewrite cannot touch data.
func vcenterXML(p []byte) []byte {
	if !bytes.Contains(p, goXSIType) {
		return p
	}
	return bytes.ReplaceAll(bytes.ReplaceAll(p, goXSIDecl, nil), goXSIType, vcXSIType)
}

// soapCall finds the method name and its _this in a SOAP request.
func soapCall(body []byte) (method, thisType, thisValue string) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case !inBody:
				inBody = t.Name.Local == "Body"
			case method == "":
				method = t.Name.Local
			case t.Name.Local == "_this":
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						thisType = a.Value
					}
				}
				var v string
				_ = dec.DecodeElement(&v, &t)
				return method, thisType, strings.TrimSpace(v)
			default:
				return
			}
		}
	}
}

// writeNotAuthenticated answers like vCenter does for a call without a
// valid session.
func writeNotAuthenticated(w http.ResponseWriter, thisType, thisValue string) {
	var t, v bytes.Buffer
	_ = xml.EscapeText(&t, []byte(thisType))
	_ = xml.EscapeText(&v, []byte(thisValue))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>The session is not authenticated.</faultstring><detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated"><object type="%s">%s</object><privilegeId>System.View</privilegeId></NotAuthenticatedFault></detail></soapenv:Fault>
</soapenv:Body>
</soapenv:Envelope>
`, t.String(), v.String())
}

// serveFolder serves datastore files like vCenter's /folder/<path>?dcPath=&dsName=:
// GET and HEAD read them, PUT replaces one (see upload.go).
func (lab *Lab) serveFolder(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	store, ok := lab.storeNamed(q.Get("dsName"))
	// Uploads go to the primary datastore only (LocalDS_1 only receives relocated VMs).
	if !ok || (q.Get("dcPath") != "" && strings.Trim(q.Get("dcPath"), "/") != lab.dcName) || (r.Method == http.MethodPut && store.name != lab.dsName) {
		http.Error(w, "datastore not found", http.StatusNotFound)
		return
	}
	if !lab.sessions.valid(sessionCookie(r)) {
		http.Error(w, "a valid vmware_soap_session cookie is required", http.StatusUnauthorized)
		return
	}
	if lab.folderDenied(w, r) {
		return
	}
	rel := path.Clean("/" + strings.TrimPrefix(r.URL.Path, "/folder"))
	if vsanDatastore && isExtentFile(rel) {
		http.Error(w, "file not found", http.StatusNotFound) // vSAN: the extent is an object, not a file
		return
	}
	if r.Method == http.MethodPut {
		lab.putFolder(w, r, rel)
		return
	}
	f, err := os.Open(filepath.Join(store.dir, filepath.FromSlash(rel)))
	if err != nil {
		http.Error(w, "file not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.Error(w, "file not found", http.StatusNotFound)
		return
	}

	cw := &countingWriter{ResponseWriter: w, lab: lab, limit: -1}
	if isDescriptorFile(rel) {
		// A client reads a descriptor to find its extent: counted apart, never gated,
		// so the disk counters and the gate still see disk data only.
		cw.counter = &lab.stats.descriptorBytes
	} else if r.Method == http.MethodGet {
		vm := strings.SplitN(strings.TrimPrefix(rel, "/"), "/", 2)[0]
		defer lab.stats.reads.begin(vm, rel)()
		lab.stats.reads.await(vm, rel)
		if rule, ok := lab.faults.take(faultDatastoreRead, vm); ok {
			cw.limit = rule.After
			log.Printf("lab: injected fault: dropping GET %s after %d body bytes", rel, rule.After)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(cw, r, st.Name(), st.ModTime(), f)
}

var errDropped = errors.New("lab: connection dropped (injected fault)")

// countingWriter counts body bytes served and, for an injected fault, drops
// the connection once limit bytes of the body have gone out.
type countingWriter struct {
	http.ResponseWriter
	lab     *Lab
	written int64
	limit   int64         // -1: no fault
	counter *atomic.Int64 // nil: folderBytes
	dropped bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.dropped {
		return 0, errDropped
	}
	cut := c.limit >= 0 && c.written+int64(len(p)) > c.limit
	if cut {
		p = p[:c.limit-c.written]
	}
	n, err := c.ResponseWriter.Write(p)
	c.written += int64(n)
	if c.counter == nil {
		c.counter = &c.lab.stats.folderBytes
	}
	c.counter.Add(int64(n))
	if err != nil || !cut {
		return n, err
	}
	c.drop()
	return n, errDropped
}

// drop flushes what was written and closes the TCP connection under TLS
// without a close_notify, the way a network failure looks to the client.
func (c *countingWriter) drop() {
	c.dropped = true
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	hj, ok := c.ResponseWriter.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = buf.Flush()
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = conn.Close()
}
