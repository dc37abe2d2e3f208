// Double binary tree over the nodes of a job (NCCL's construction; Sanders, Speck and Traff,
// "Two-tree algorithms for full bandwidth broadcast, reduction and scan", 2009). Pure functions,
// no MPI: every rank computes the same trees from (node, nnodes).
//
// Tree 0 is an in-order binary tree over 0..n-1. A node's level is its lowest set bit, so odd nodes
// (level 1) are leaves, node 2 (level 2) has children 1 and 3, node 4 (level 4) has 2 and 6, and so
// on; node 0 is the root and has exactly one child, the largest power of two below n. When n is not
// a power of two the right-hand subtrees are cut off: a node's right child is node + h for the
// largest h <= level/2 that stays below n, and a node r whose natural parent (r + level, one level
// up) is >= n hangs off r - level instead (the nearest higher-level node on its left).
//
// Tree 1 is tree 0 with the node numbers remapped by a map that flips parity, so the nodes that
// are leaves in tree 0 (odd numbers) take even, i.e. interior, positions in tree 1:
//   n even: mirror,          node r plays tree-0 position n-1-r  (root n-1);
//   n odd:  shift by one,    node r plays tree-0 position r-1 mod n  (root 1).
//
// What holds (checked by tests for every n in 1..1024):
//   - both trees are spanning trees (one root, every node reachable, parent/child links agree),
//     every node has at most 2 children, depth (edges from the root) <= ceil(log2 n);
//   - n = 1: one node, root of both trees, no edges;
//   - n even (n >= 2): no node has children in both trees, so each node does interior work
//     (receive from children, reduce, forward) in one tree only and is a leaf in the other;
//   - n odd (n >= 3): the same holds for every node except node 0, which is tree 0's root with a
//     single child and also an interior node of tree 1 (it plays tree-0 position n-1, an even
//     position).
// Each tree carries half of the data; pipelined chunk by chunk, a node sends and receives about S
// per phase in total.
#pragma once

#include <array>
#include <vector>

namespace hfreduce::tree {

struct TreeNode {
  int parent = -1;                      // -1 at the root
  std::array<int, 2> children{-1, -1};  // valid entries first, -1 after them
  int num_children() const { return (children[0] >= 0 ? 1 : 0) + (children[1] >= 0 ? 1 : 0); }
};

// Node `node`'s links in tree 0 or 1 over nnodes nodes (1 <= nnodes, 0 <= node < nnodes).
// Throws hfreduce::Error(Status::invalid_argument) otherwise.
TreeNode tree_node(int tree, int node, int nnodes);

// Root of tree 0 or 1: 0 and (n even ? n-1 : 1 % n).
int tree_root(int tree, int nnodes);

struct DoubleBinaryTree {
  std::vector<TreeNode> tree[2];  // tree[t][node]
  int root[2] = {0, 0};
  int depth[2] = {0, 0};  // edges on the longest root-to-node path
};

DoubleBinaryTree build_double_binary_tree(int nnodes);

}  // namespace hfreduce::tree
