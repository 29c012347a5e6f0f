module github.com/heartbeatd/heartbeatd/clients/go

go 1.19
