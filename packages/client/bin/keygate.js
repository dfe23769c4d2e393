#!/usr/bin/env node
// The `keygate` bin: a committed shim, so npm links it even before dist/ is built (the root
// `prepare` builds it after linking).
import "../dist/cli.js";
