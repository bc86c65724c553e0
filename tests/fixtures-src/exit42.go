// A Go program for the go_buildinfo fixtures: exit(42), nothing else.
package main

import "os"

func main() { os.Exit(42) }
