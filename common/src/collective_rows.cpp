// The collective result row's one column list and what is made of it (collective_rows.h).
#include "collective_rows.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ffb {
namespace {

CellValue i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

ResultColumn stored(std::string name, std::string units, ColumnKind kind,
                    std::function<CellValue(const SweepRow&, const PlacementResult&)> value) {
  return ResultColumn{.name = std::move(name),
                      .units = std::move(units),
                      .kind = kind,
                      .header = {},
                      .unit_label = {},
                      .width = 0,
                      .scope = CellScope::placement,
                      .na_unless_checked = false,
                      .value = std::move(value)};
}

ResultColumn printed(ResultColumn c, std::string header, std::string unit_label, int width,
                     CellScope scope) {
  c.header = std::move(header);
  c.unit_label = std::move(unit_label);
  c.width = width;
  c.scope = scope;
  return c;
}

std::vector<ResultColumn> make_columns() {
  using K = ColumnKind;
  using S = CellScope;
  using Row = const SweepRow&;
  using Place = const PlacementResult&;
  std::vector<ResultColumn> c;
  c.push_back(printed(stored("size", "B", K::i64, [](Row w, Place) { return i64(w.bytes); }),
                      "size", "(B)", 12, S::row));
  c.push_back(printed(stored("count", "count", K::i64, [](Row w, Place) { return i64(w.count); }),
                      "count", "(elements)", 12, S::row));
  c.push_back(printed(stored("type", "1", K::str,
                             [](Row w, Place) { return CellValue(std::string(name_of(w.type))); }),
                      "type", "", 8, S::row));
  c.push_back(printed(stored("redop", "1", K::str,
                             [](Row w, Place) { return CellValue(std::string(name_of(w.op))); }),
                      "redop", "", 6, S::row));
  // nccl-tests' root column: always -1 for allreduce; printed, not stored.
  c.push_back(
      printed(stored("", "", K::i64, [](Row, Place) { return CellValue(std::int64_t{-1}); }),
              "root", "", 6, S::row));
  // p is always one of w.place (every caller passes the row's own element).
  c.push_back(stored("placement", "1", K::str, [](Row w, Place p) {
    return CellValue(std::string(&p == &w.place[0] ? "out-of-place" : "in-place"));
  }));
  c.push_back(printed(stored("time", "us", K::f64, [](Row, Place p) { return p.time_us; }), "time",
                      "(us)", 7, S::placement));
  c.push_back(stored("time_mean", "us", K::f64, [](Row, Place p) { return p.summary.mean; }));
  c.push_back(stored("time_min", "us", K::f64, [](Row, Place p) { return p.summary.min; }));
  c.push_back(stored("time_p50", "us", K::f64, [](Row, Place p) { return p.summary.p50; }));
  c.push_back(stored("time_p99", "us", K::f64, [](Row, Place p) { return p.summary.p99; }));
  c.push_back(stored("time_max", "us", K::f64, [](Row, Place p) { return p.summary.max; }));
  c.push_back(printed(stored("algbw", "GB/s", K::f64, [](Row, Place p) { return p.algbw; }),
                      "algbw", "(GB/s)", 6, S::placement));
  c.push_back(printed(stored("busbw", "GB/s", K::f64, [](Row, Place p) { return p.busbw; }),
                      "busbw", "(GB/s)", 6, S::placement));
  auto wrong = printed(stored("wrong", "count", K::i64, [](Row, Place p) { return p.wrong; }),
                       "#wrong", "", 6, S::placement);
  wrong.na_unless_checked = true;
  c.push_back(std::move(wrong));
  c.push_back(stored("accuracy", "1", K::f64, [](Row, Place p) { return p.accuracy; }));
  c.push_back(
      stored("iters_per_sample", "count", K::i64, [](Row, Place p) { return p.iters_per_sample; }));
  // Per iteration: the slowest, fastest and mean rank, and rank 0 (what -a chooses from).
  c.push_back(stored("iter_time_max", "us", K::per_iteration,
                     [](Row, Place p) { return std::span<const double>(p.t_max); }));
  c.push_back(stored("iter_time_min", "us", K::per_iteration,
                     [](Row, Place p) { return std::span<const double>(p.t_min); }));
  c.push_back(stored("iter_time_avg", "us", K::per_iteration,
                     [](Row, Place p) { return std::span<const double>(p.t_avg); }));
  c.push_back(stored("iter_time_rank0", "us", K::per_iteration,
                     [](Row, Place p) { return std::span<const double>(p.t_rank0); }));
  return c;
}

bool is_printed(const ResultColumn& c) { return !c.header.empty(); }
bool is_stored(const ResultColumn& c) { return !c.name.empty(); }

// A number in at most `width` characters as nccl-tests prints its cells: two decimals, else one,
// else none, else an exponent.
std::string number_text(double v, int width) {
  for (int precision = 2; precision >= 0; --precision) {
    std::string s = fmt::format("{:{}.{}f}", v, width, precision);
    if (static_cast<int>(s.size()) <= width) return s;
  }
  return fmt::format("{:{}.{}e}", v, width, width >= 7 ? 1 : 0);
}

std::string cell_text(const ResultColumn& c, const CellValue& v, bool check) {
  if (c.na_unless_checked && !check) return fmt::format("{:>{}}", "N/A", c.width);
  if (const auto* x = std::get_if<double>(&v)) return number_text(*x, c.width);
  if (const auto* x = std::get_if<std::int64_t>(&v)) return fmt::format("{:>{}}", *x, c.width);
  if (const auto* x = std::get_if<std::string>(&v)) return fmt::format("{:>{}}", *x, c.width);
  return {};
}

// One line of the header: "# " then the cells of the printed columns, the placement ones twice.
std::string header_line(bool units) {
  std::string line = "#";
  const auto add = [&](const ResultColumn& c) {
    // "# " takes the first cell's two leading characters.
    const int width = line.size() == 1 ? c.width - 2 : c.width;
    line += fmt::format(" {}{:>{}}", line.size() == 1 ? "" : " ", units ? c.unit_label : c.header,
                        width);
  };
  for (const auto& c : result_columns())
    if (is_printed(c) && c.scope == CellScope::row) add(c);
  for (int p = 0; p < 2; ++p)
    for (const auto& c : result_columns())
      if (is_printed(c) && c.scope == CellScope::placement) add(c);
  return line + "\n";
}

Column& add_stored_column(Table& table, const ResultColumn& c, std::size_t iters) {
  switch (c.kind) {
    case ColumnKind::i64:
      table.add_i64(c.name, c.units);
      break;
    case ColumnKind::f64:
      table.add_f64(c.name, c.units);
      break;
    case ColumnKind::str:
      table.add_str(c.name);
      break;
    case ColumnKind::per_iteration:
      table.add_f64(c.name, c.units, iters);
      break;
  }
  return table.columns.back();
}

void append(Column& column, const CellValue& v) {
  std::visit(
      [&v](auto& data) {
        using T = typename std::decay_t<decltype(data)>::value_type;
        if constexpr (std::is_same_v<T, double>) {
          if (const auto* span = std::get_if<std::span<const double>>(&v))
            data.insert(data.end(), span->begin(), span->end());
          else
            data.push_back(std::get<double>(v));
        } else {
          data.push_back(std::get<T>(v));
        }
      },
      column.data);
}

// One metric's column while the table is built: numbers, and texts in case it is a text column.
struct MetricColumn {
  std::string units;
  bool text = false;  // some placement has a text value: a string column
  std::vector<double> numbers;
  std::vector<std::string> texts;
};

// The backends' metrics, one column each, sorted by name: a float64 column (NaN where a row has
// none) or, for a text metric, a string column ("" where a row has none).
void add_metric_columns(Table& table, const std::vector<SweepRow>& rows) {
  std::map<std::string, MetricColumn> metric_cols;
  std::size_t index = 0;
  for (const auto& row : rows)
    for (const auto& r : row.place) {
      for (const auto& m : r.metrics) {
        auto& col = metric_cols[m.name];
        col.units = m.units;
        col.text = col.text || !m.text.empty();
        col.numbers.resize(index, std::nan(""));
        col.numbers.push_back(m.value);
        col.texts.resize(index);
        col.texts.push_back(m.text.empty() ? fmt::format("{:g}", m.value) : m.text);
      }
      ++index;
    }
  for (auto& [name, col] : metric_cols) {
    if (col.text) {
      col.texts.resize(index);
      table.add_str(name) = std::move(col.texts);
      table.columns.back().units = col.units;
    } else {
      col.numbers.resize(index, std::nan(""));
      table.add_f64(name, col.units) = std::move(col.numbers);
    }
  }
}

// One placement's extras: "(small path)", "26% of ceiling", "stage_copy_in=28.6", "acc=0.123".
std::string placement_extras(const PlacementResult& r, bool show_metrics, bool accuracy) {
  std::vector<std::string> items;
  if (show_metrics) {
    for (const auto& m : r.metrics) {
      if (m.name == "fallback") {
        if (m.value > 0) items.emplace_back("(small path)");
      } else if (m.name == "ceiling_fraction") {
        items.push_back(fmt::format("{:.0f}% of ceiling", 100.0 * m.value));
      } else if (!m.text.empty()) {
        items.push_back(fmt::format("{}={}", m.name, m.text));
      } else {
        items.push_back(fmt::format("{}={:.1f}", m.name, m.value));
      }
    }
  }
  if (accuracy && !std::isnan(r.accuracy)) items.push_back(fmt::format("acc={:.3f}", r.accuracy));
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// One name's figures over ranks while combine_rank_metrics reads them.
struct RankFigures {
  std::string units;
  double worst = std::nan("");
  std::set<std::string> texts;
};

void merge_rank_figures(const nlohmann::json& entry, RankFigures& f) {
  f.units = entry.at("units").get<std::string>();
  if (const auto texts = entry.find("texts"); texts != entry.end()) {
    for (const auto& t : *texts) f.texts.insert(t.get<std::string>());
    return;
  }
  const auto& v = entry.at("value");  // null: NaN (JSON has none)
  const double x = v.is_number() ? v.get<double>() : std::nan("");
  if (!std::isnan(x) && (std::isnan(f.worst) || x > f.worst)) f.worst = x;
}

}  // namespace

MetricSums::Slot& MetricSums::slot_for(const Metric& m, std::size_t position) {
  if (position < slots_.size() && slots_[position].name == m.name) return slots_[position];
  for (auto& s : slots_)
    if (s.name == m.name) return s;
  slots_.push_back(Slot{.name = m.name, .units = m.units, .sum = 0, .texts = {}});
  return slots_.back();
}

void MetricSums::add(const std::vector<Metric>& metrics) {
  for (std::size_t k = 0; k < metrics.size(); ++k) {
    const Metric& m = metrics[k];
    Slot& slot = slot_for(m, k);
    if (m.text.empty())
      slot.sum += m.value;
    else if (std::find(slot.texts.begin(), slot.texts.end(), m.text) == slot.texts.end())
      slot.texts.push_back(m.text);
  }
}

std::string MetricSums::encode(std::size_t iterations) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : slots_) {
    nlohmann::json entry{{"name", s.name}, {"units", s.units}};
    if (!s.texts.empty())
      entry["texts"] = s.texts;
    else
      entry["value"] = iterations > 0 ? s.sum / static_cast<double>(iterations) : std::nan("");
    out.push_back(std::move(entry));
  }
  return out.dump();
}

std::vector<Metric> combine_rank_metrics(const std::vector<std::string>& encoded) {
  std::map<std::string, RankFigures> figures;
  for (std::size_t rank = 0; rank < encoded.size(); ++rank) {
    const auto doc = nlohmann::json::parse(encoded[rank], nullptr, false);
    if (!doc.is_array())
      throw std::logic_error(fmt::format("collective metrics: rank {} sent no list", rank));
    for (const auto& entry : doc)
      merge_rank_figures(entry, figures[entry.at("name").get<std::string>()]);
  }
  std::vector<Metric> out;
  for (const auto& [name, f] : figures) {
    std::string text;
    for (const auto& t : f.texts) text += (text.empty() ? "" : "+") + t;
    out.push_back({name, f.units, f.texts.empty() ? f.worst : 0.0, text});
  }
  return out;
}

const std::vector<ResultColumn>& result_columns() {
  static const std::vector<ResultColumn> columns = make_columns();
  return columns;
}

void print_table_header(bool extras) {
  fmt::print(
      "#\n# {:50}           out-of-place                       in-place{}\n", "",
      extras ? "          (extras after the last column: # out-of-place: ...; in-place: ...)" : "");
  fmt::print("{}{}", header_line(false), header_line(true));
}

// The 13 cells nccl-tests prints: size count type redop root, then time algbw busbw #wrong for
// out-of-place and for in-place (#wrong "N/A" under -c 0).
std::string row_text(const SweepRow& row, bool check) {
  std::string line;
  const auto add = [&](const ResultColumn& c, const PlacementResult& p) {
    line += (line.empty() ? "" : "  ") + cell_text(c, c.value(row, p), check);
  };
  for (const auto& c : result_columns())
    if (is_printed(c) && c.scope == CellScope::row) add(c, row.place[0]);
  for (const auto& p : row.place)
    for (const auto& c : result_columns())
      if (is_printed(c) && c.scope == CellScope::placement) add(c, p);
  return line;
}

// After the last column, so that every nccl-tests cell keeps its position on every row:
// "  # out-of-place: ...; in-place: ..." (empty when neither placement has any).
std::string row_extras(const SweepRow& row, bool show_metrics, bool accuracy) {
  std::string out;
  for (std::size_t p = 0; p < row.place.size(); ++p) {
    const auto items = placement_extras(row.place[p], show_metrics, accuracy);
    if (items.empty()) continue;
    out += fmt::format("{}{}: {}", out.empty() ? "  # " : "; ",
                       p == 0 ? "out-of-place" : "in-place", items);
  }
  return out;
}

Table collective_table(const std::vector<SweepRow>& rows, std::size_t iters) {
  Table table{.name = "collective", .columns = {}};
  std::vector<std::pair<const ResultColumn*, Column*>> stored_columns;
  for (const auto& c : result_columns())
    if (is_stored(c)) stored_columns.emplace_back(&c, &add_stored_column(table, c, iters));
  for (const auto& row : rows)
    for (const auto& p : row.place)
      for (const auto& [spec, column] : stored_columns) append(*column, spec->value(row, p));
  add_metric_columns(table, rows);
  return table;
}

BusbwAverages busbw_averages(const std::vector<SweepRow>& rows) {
  BusbwAverages a;
  double all = 0, large = 0;
  for (const auto& row : rows)
    for (const auto& r : row.place) {
      all += r.busbw;
      ++a.all_values;
      if (row.bytes >= BusbwAverages::kLargeBytes) {
        large += r.busbw;
        ++a.large_values;
      }
    }
  a.all = a.all_values > 0 ? all / static_cast<double>(a.all_values) : std::nan("");
  a.large = a.large_values > 0 ? large / static_cast<double>(a.large_values) : std::nan("");
  return a;
}

}  // namespace ffb
