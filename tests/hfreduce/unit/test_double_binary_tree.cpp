// The double binary tree for every node count 1..1024: both trees are valid spanning trees with
// consistent links, at most two children, bounded depth, and (the point of two trees) no node does
// interior work in both, with the one documented exception for odd counts.
#include <algorithm>
#include <bit>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "double_binary_tree.h"
#include "hfreduce/error.h"

namespace {

using hfreduce::tree::build_double_binary_tree;
using hfreduce::tree::DoubleBinaryTree;
using hfreduce::tree::tree_node;
using hfreduce::tree::tree_root;
using hfreduce::tree::TreeNode;

constexpr int kMaxNodes = 1024;

int ceil_log2(int n) { return n <= 1 ? 0 : std::bit_width(static_cast<unsigned>(n - 1)); }

// One root, links agree both ways, every node reachable exactly once from the root (so no cycles),
// valid children first; returns the depth in edges.
int check_spanning_tree(const std::vector<TreeNode>& nodes, int root, const std::string& what) {
  const int n = static_cast<int>(nodes.size());
  int roots = 0;
  for (int v = 0; v < n; ++v) {
    const TreeNode& node = nodes[v];
    if (node.parent < 0) {
      ++roots;
      EXPECT_EQ(v, root) << what << ": unexpected root " << v;
    } else {
      EXPECT_LT(node.parent, n) << what << " node " << v;
      const auto& siblings = nodes[node.parent].children;
      EXPECT_TRUE(siblings[0] == v || siblings[1] == v)
          << what << ": node " << v << " not a child of its parent " << node.parent;
    }
    EXPECT_LE(node.num_children(), 2);
    if (node.children[0] < 0) {
      EXPECT_LT(node.children[1], 0) << what << ": hole in children";
    }
    if (node.num_children() == 2) {
      EXPECT_NE(node.children[0], node.children[1]) << what;
    }
    for (const int c : node.children) {
      if (c < 0) continue;
      EXPECT_LT(c, n) << what;
      EXPECT_NE(c, v) << what;
      if (c < n) {
        EXPECT_EQ(nodes[c].parent, v) << what << ": child " << c << " of " << v;
      }
    }
  }
  EXPECT_EQ(roots, 1) << what;

  std::vector<int> seen(static_cast<std::size_t>(n), 0);
  std::vector<int> frontier{root};
  int depth = -1;
  int reached = 0;
  while (!frontier.empty() && depth <= n) {
    ++depth;
    std::vector<int> next;
    for (const int v : frontier) {
      if (seen[v]++ != 0) {
        ADD_FAILURE() << what << ": node " << v << " reached twice";
        return depth;
      }
      ++reached;
      for (const int c : nodes[v].children)
        if (c >= 0 && c < n) next.push_back(c);
    }
    frontier.swap(next);
  }
  EXPECT_EQ(reached, n) << what << ": not every node is reachable from the root";
  return depth;
}

TEST(DoubleBinaryTree, ValidForEveryNodeCountUpTo1024) {
  int worst_excess = -100;  // max over n of depth - ceil(log2 n), reported below
  for (int n = 1; n <= kMaxNodes; ++n) {
    const DoubleBinaryTree dbt = build_double_binary_tree(n);
    for (int t = 0; t < 2; ++t) {
      const std::string what = "n=" + std::to_string(n) + " tree " + std::to_string(t);
      ASSERT_EQ(static_cast<int>(dbt.tree[t].size()), n) << what;
      EXPECT_EQ(dbt.root[t], tree_root(t, n)) << what;
      const int depth = check_spanning_tree(dbt.tree[t], dbt.root[t], what);
      EXPECT_EQ(depth, dbt.depth[t]) << what;
      // The required bound is ceil(log2 n) + 1; the construction meets ceil(log2 n) itself.
      EXPECT_LE(depth, ceil_log2(n)) << what;
      worst_excess = std::max(worst_excess, depth - ceil_log2(n));
      for (int v = 0; v < n; ++v) {
        const TreeNode single = tree_node(t, v, n);
        EXPECT_EQ(single.parent, dbt.tree[t][v].parent);
        EXPECT_EQ(single.children, dbt.tree[t][v].children);
      }
      if (::testing::Test::HasFailure()) return;  // one broken n is enough to read
    }
    EXPECT_EQ(dbt.root[0], 0);
    EXPECT_EQ(dbt.root[1], n % 2 == 0 ? n - 1 : (n > 1 ? 1 : 0));
  }
  std::printf("max depth - ceil(log2 n) over n = 1..%d: %d\n", kMaxNodes, worst_excess);
}

TEST(DoubleBinaryTree, NoNodeIsInteriorInBothTreesExceptNodeZeroForOddCounts) {
  for (int n = 1; n <= kMaxNodes; ++n) {
    const DoubleBinaryTree dbt = build_double_binary_tree(n);
    for (int v = 0; v < n; ++v) {
      const int c0 = dbt.tree[0][v].num_children();
      const int c1 = dbt.tree[1][v].num_children();
      if (n % 2 == 1 && n >= 3 && v == 0) {
        // Documented exception: tree 0's root (one child) plays tree-0 position n-1 in tree 1.
        EXPECT_EQ(c0, 1) << "n=" << n;
        EXPECT_GE(c1, 1) << "n=" << n;
        continue;
      }
      EXPECT_TRUE(c0 == 0 || c1 == 0) << "n=" << n << ": node " << v << " is interior in both";
    }
  }
}

TEST(DoubleBinaryTree, SmallCounts) {
  // n = 1: a single node, root of both trees, no edges.
  const DoubleBinaryTree one = build_double_binary_tree(1);
  for (int t = 0; t < 2; ++t) {
    EXPECT_EQ(one.root[t], 0);
    EXPECT_EQ(one.depth[t], 0);
    EXPECT_EQ(one.tree[t][0].parent, -1);
    EXPECT_EQ(one.tree[t][0].num_children(), 0);
  }
  // n = 2: tree 0 is 0 -> 1, tree 1 (mirror) is 1 -> 0; each node is interior in exactly one.
  const DoubleBinaryTree two = build_double_binary_tree(2);
  EXPECT_EQ(two.tree[0][0].children[0], 1);
  EXPECT_EQ(two.tree[0][1].parent, 0);
  EXPECT_EQ(two.tree[1][1].children[0], 0);
  EXPECT_EQ(two.tree[1][0].parent, 1);
  EXPECT_EQ(two.depth[0], 1);
  EXPECT_EQ(two.depth[1], 1);
  EXPECT_THROW(tree_node(0, 0, 0), hfreduce::Error);
  EXPECT_THROW(tree_node(2, 0, 4), hfreduce::Error);
  EXPECT_THROW(tree_node(0, 4, 4), hfreduce::Error);
}

std::set<int> children_of(const DoubleBinaryTree& dbt, int t, int v) {
  std::set<int> s;
  for (const int c : dbt.tree[t][v].children)
    if (c >= 0) s.insert(c);
  return s;
}

// The examples drawn in NCCL's source comments (12 nodes: mirror; 13 nodes: shift).
TEST(DoubleBinaryTree, MatchesNcclExamples) {
  const DoubleBinaryTree twelve = build_double_binary_tree(12);
  EXPECT_EQ(children_of(twelve, 0, 0), (std::set<int>{8}));
  EXPECT_EQ(children_of(twelve, 0, 8), (std::set<int>{4, 10}));
  EXPECT_EQ(children_of(twelve, 0, 4), (std::set<int>{2, 6}));
  EXPECT_EQ(children_of(twelve, 0, 10), (std::set<int>{9, 11}));
  EXPECT_EQ(twelve.root[1], 11);
  EXPECT_EQ(children_of(twelve, 1, 11), (std::set<int>{3}));
  EXPECT_EQ(children_of(twelve, 1, 3), (std::set<int>{1, 7}));
  EXPECT_EQ(children_of(twelve, 1, 7), (std::set<int>{5, 9}));
  EXPECT_EQ(children_of(twelve, 1, 1), (std::set<int>{0, 2}));

  const DoubleBinaryTree thirteen = build_double_binary_tree(13);
  EXPECT_EQ(children_of(thirteen, 0, 8), (std::set<int>{4, 12}));
  EXPECT_EQ(children_of(thirteen, 0, 12), (std::set<int>{10}));
  EXPECT_EQ(thirteen.tree[0][13 - 1].parent, 8);
  EXPECT_EQ(thirteen.root[1], 1);
  EXPECT_EQ(children_of(thirteen, 1, 1), (std::set<int>{9}));
  EXPECT_EQ(children_of(thirteen, 1, 9), (std::set<int>{5, 0}));
  EXPECT_EQ(children_of(thirteen, 1, 0), (std::set<int>{11}));
  EXPECT_EQ(children_of(thirteen, 1, 11), (std::set<int>{10, 12}));
}

}  // namespace
