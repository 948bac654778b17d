#include "cli/help_topics.h"

#include <gtest/gtest.h>

namespace umacvlan::cli {
namespace {

TEST(HelpTopics, EveryModeHasATopicAndEveryLineFits80Columns) {
  for (const char* mode : {"private", "vepa", "bridge", "passthru", "source"}) {
    EXPECT_TRUE(topic_text(mode)) << mode;
  }
  for (const auto name : topic_names()) {
    const auto text = topic_text(name);
    ASSERT_TRUE(text) << name;
    std::size_t start = 0;
    while (start < text->size()) {
      const std::size_t end = std::min(text->find('\n', start), text->size());
      EXPECT_LE(end - start, 80u) << name << ": " << text->substr(start, end - start);
      start = end + 1;
    }
    EXPECT_NE(topics_summary().find(std::string(name)), std::string::npos) << name;
  }
  EXPECT_FALSE(topic_text("nope"));
}

TEST(HelpTopics, ManSectionsCarryEveryTopicPreformatted) {
  const std::string man = topics_for_man();
  EXPECT_EQ(man.rfind("[MODES]\n", 0), 0u);
  for (const char* section : {"[EXPLAIN]", "[LAB]", "[CNI PLUGIN]", "[DAEMON]"}) {
    EXPECT_NE(man.find(section), std::string::npos) << section;
  }
  EXPECT_NE(man.find(".SS passthru\n.nf\n"), std::string::npos);
  // No line may start a roff request by accident.
  std::size_t start = 0;
  while (start < man.size()) {
    const std::size_t end = std::min(man.find('\n', start), man.size());
    const std::string line = man.substr(start, end - start);
    if (!line.empty() && line[0] == '.') {
      EXPECT_TRUE(line == ".nf" || line == ".fi" || line.rfind(".SS ", 0) == 0) << line;
    }
    start = end + 1;
  }
}

}  // namespace
}  // namespace umacvlan::cli
