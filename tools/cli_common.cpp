#include "tools/cli_common.h"

#include <cctype>
#include <cstdio>

#include "util/size_parse.h"

namespace strata::tools {

void AddEnvironmentVariables(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string& lname = opt->get_single_name();
    if (lname.empty() || lname == "help" || opt->get_positional()) continue;
    if (!opt->get_envname().empty()) continue;
    std::string env = "STRATA_";
    for (char c : lname) {
      env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    opt->envname(env);
  }
  for (CLI::App* sub : app.get_subcommands({})) AddEnvironmentVariables(*sub);
}

CLI::Option* AddSizeOption(CLI::App& app, const std::string& name, uint64_t* bytes,
                           const std::string& description) {
  return app
      .add_option_function<std::string>(
          name,
          [bytes, name](const std::string& text) {
            auto parsed = ParseSize(text);
            if (!parsed.ok()) throw CLI::ValidationError(name, parsed.status().message());
            *bytes = *parsed;
          },
          description)
      ->type_name("SIZE");
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "strata: %s\n", status.ToString().c_str());
  return status.code() == StatusCode::kCancelled ? 130 : 1;
}

}  // namespace strata::tools
