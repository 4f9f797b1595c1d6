module taskplatform.local/boundedrunc

go 1.24
