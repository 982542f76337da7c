// etcd's own entry point (go.etcd.io/etcd/server/v3/etcdmain), the function the upstream etcd
// binary's main calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
