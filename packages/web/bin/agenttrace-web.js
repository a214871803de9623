#!/usr/bin/env node
// A committed entry point: npm links a bin only when its file exists at install time, which
// dist/ (built after install) does not.
import '../dist/cli.js';
