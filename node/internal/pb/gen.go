// Package pb holds the record protocol's generated messages.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative wire.proto
