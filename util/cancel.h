// Cooperative cancellation for long jobs (Ctrl-C during make-model or pack).
// InstallInterruptHandler() makes SIGINT/SIGTERM set a flag instead of killing the
// process, so writers can stop between chunks, delete their temporary file and
// return Status::Cancelled. Thread-safe (one atomic flag).
#pragma once

namespace strata {

void InstallInterruptHandler();
bool InterruptRequested();
void RequestInterrupt();  // for tests: behaves as if Ctrl-C was pressed
void ClearInterrupt();

}  // namespace strata
