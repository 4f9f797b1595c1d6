module taskplatform.local/pause

go 1.24
