// Package pb holds the protobuf messages of package records: the signed
// peer record payload and the persistent store's value.
package pb

// protoc runs from the module root so the descriptor registers under the
// unique path records/internal/pb/record.proto.
//go:generate protoc -I ../../.. --go_out=../../.. --go_opt=paths=source_relative records/internal/pb/record.proto
