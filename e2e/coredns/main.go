// Command coredns is CoreDNS with only the plugins the test bed's cluster DNS uses: answers for Services and
// Pods from the API (kubernetes), and nothing forwarded anywhere (no forward plugin is compiled in).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The order in which the plugins handle a query (CoreDNS' plugin.cfg order, reduced).
var directives = []string{"bind", "log", "errors", "health", "ready", "template", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
