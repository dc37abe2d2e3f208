#include "double_binary_tree.h"

#include <bit>
#include <cstddef>
#include <string>

#include "hfreduce/error.h"

namespace hfreduce::tree {
namespace {

void check_args(int tree, int node, int nnodes) {
  if (tree != 0 && tree != 1)
    throw Error(Status::invalid_argument, "double binary tree: tree must be 0 or 1");
  if (nnodes < 1 || node < 0 || node >= nnodes) {
    throw Error(Status::invalid_argument, "double binary tree: node " + std::to_string(node) +
                                              " out of range for " + std::to_string(nnodes) +
                                              " nodes");
  }
}

// Tree 0 (see the header): in-order tree, level = lowest set bit, root 0 with one child.
TreeNode in_order_node(int r, int n) {
  TreeNode node;
  if (r == 0) {
    // The single child is the largest power of two below n: the top of the in-order tree
    // over 1..n-1.
    if (n > 1) node.children[0] = static_cast<int>(std::bit_floor(static_cast<unsigned>(n - 1)));
    return node;
  }
  const int level = r & -r;
  // One level up is the node with bit `level` cleared and bit 2*level set (r - level if r already
  // has bit 2*level, else r + level); if that is past the end, attach to r - level instead.
  const int natural_parent = (r ^ level) | (level << 1);
  node.parent = natural_parent < n ? natural_parent : r - level;
  const int half = level >> 1;
  if (half > 0) {
    node.children[0] = r - half;  // always < r, so it exists
    int step = half;
    while (step > 0 && r + step >= n) step >>= 1;  // trim the right subtree at the end
    if (step > 0) node.children[1] = r + step;
  }
  return node;
}

// Tree 1 relabels tree 0: node r plays tree-0 position position_in_tree1(r); the inverse map
// node_in_tree1(p) names the node at position p.
int position_in_tree1(int r, int n) { return n % 2 == 0 ? n - 1 - r : (r - 1 + n) % n; }
int node_in_tree1(int p, int n) { return n % 2 == 0 ? n - 1 - p : (p + 1) % n; }

int depth_of(const std::vector<TreeNode>& nodes, int root) {
  // Breadth-first from the root; nodes are few (one per machine), so simplicity wins.
  int depth = 0;
  std::vector<int> frontier{root};
  for (std::size_t levels = 0; levels <= nodes.size(); ++levels) {
    std::vector<int> next;
    for (const int v : frontier)
      for (const int c : nodes[v].children)
        if (c >= 0) next.push_back(c);
    if (next.empty()) return depth;
    ++depth;
    frontier.swap(next);
  }
  // Unreachable for a valid construction.
  throw Error(Status::internal_error, "double binary tree: cycle");
}

}  // namespace

TreeNode tree_node(int tree, int node, int nnodes) {
  check_args(tree, node, nnodes);
  if (tree == 0) return in_order_node(node, nnodes);
  const TreeNode at_position = in_order_node(position_in_tree1(node, nnodes), nnodes);
  const auto relabel = [nnodes](int p) { return p < 0 ? -1 : node_in_tree1(p, nnodes); };
  TreeNode result;
  result.parent = relabel(at_position.parent);
  result.children = {relabel(at_position.children[0]), relabel(at_position.children[1])};
  return result;
}

int tree_root(int tree, int nnodes) {
  check_args(tree, 0, nnodes);
  return tree == 0 ? 0 : node_in_tree1(0, nnodes);
}

DoubleBinaryTree build_double_binary_tree(int nnodes) {
  check_args(0, 0, nnodes);
  DoubleBinaryTree result;
  for (int t = 0; t < 2; ++t) {
    result.tree[t].reserve(static_cast<std::size_t>(nnodes));
    for (int v = 0; v < nnodes; ++v) result.tree[t].push_back(tree_node(t, v, nnodes));
    result.root[t] = tree_root(t, nnodes);
    result.depth[t] = depth_of(result.tree[t], result.root[t]);
  }
  return result;
}

}  // namespace hfreduce::tree
