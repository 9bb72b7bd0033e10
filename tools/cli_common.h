// Shared CLI plumbing for the strata subcommands: STRATA_<OPTION> environment variables
// for every option, size-valued options, and the one-line error convention.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace strata::tools {

// Gives every option of `app` and its subcommands an environment variable named
// STRATA_<LONG_NAME> (dashes become underscores), as llama.cpp does with LLAMA_ARG_*.
// A flag given on the command line wins over the environment.
void AddEnvironmentVariables(CLI::App& app);

// An option that takes a byte size with K/M/G/T suffixes ("48G", "1.5T", "512M").
CLI::Option* AddSizeOption(CLI::App& app, const std::string& name, uint64_t* bytes,
                           const std::string& description);

// Prints "strata: <status>" on stderr and returns the exit code for it (1, or 130
// after Ctrl-C).
int ReportError(const Status& status);

}  // namespace strata::tools
