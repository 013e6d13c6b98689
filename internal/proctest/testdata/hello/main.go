// Command hello is what proctest's tests build.
package main

import "fmt"

func main() { fmt.Println("hello") }
