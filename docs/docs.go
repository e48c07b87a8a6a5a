// Package docs holds PayFuse's documents that the binary serves: the
// OpenAPI description of the REST API (written by hand to match the
// handlers; web/api_contract_test.go holds the two together).
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the REST API under /api/v1.
//
//go:embed openapi.json
var OpenAPI []byte
