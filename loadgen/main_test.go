package loadgen

import (
	"testing"

	"github.com/stackwatch/stackwatch/internal/proctest"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }
