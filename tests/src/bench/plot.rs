//! The plot: ns per packet against the number of VIPs, as a dependency-free SVG with two
//! panels (program cost through BPF_PROG_TEST_RUN; whole-path CPU ns per packet).

use std::fmt::Write as _;

use super::{
    progcost::{self, Dp, Scenario},
    wholepath::{self, Contender},
};

const W: f64 = 1200.0;
const H: f64 = 520.0;
const PANEL_W: f64 = 470.0;
const PANEL_H: f64 = 360.0;
const TOP: f64 = 70.0;

const COLORS: [&str; 9] = [
    "#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf",
];

struct Series {
    label: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(1e-9).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut d = 10f64.powf(self.lo.log10().floor());
            while d <= self.hi * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    let v = d * m;
                    if v >= self.lo * 0.9999 && v <= self.hi * 1.0001 {
                        t.push(v);
                    }
                }
                d *= 10.0;
            }
            t
        } else {
            let span = self.hi - self.lo;
            let raw = span / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(mag * 10.0);
            let mut t = Vec::new();
            let mut v = (self.lo / step).ceil() * step;
            while v <= self.hi + 1e-9 {
                t.push(v);
                v += step;
            }
            t
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn panel(svg: &mut String, x0: f64, title: &str, ylabel: &str, series: &[Series], ylog: bool) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        xlo = xlo.min(*x);
        xhi = xhi.max(*x);
        ylo = ylo.min(*y);
        yhi = yhi.max(*y);
    }
    if xlo > xhi {
        return;
    }
    let xa = Axis {
        lo: xlo,
        hi: if xhi > xlo { xhi } else { xlo * 10.0 },
        log: true,
    };
    let ya = if ylog {
        Axis {
            lo: 10f64.powf(ylo.log10().floor()),
            hi: 10f64.powf(yhi.log10().ceil()),
            log: true,
        }
    } else {
        Axis {
            lo: 0.0,
            hi: yhi * 1.15,
            log: false,
        }
    };
    let px = |x: f64| x0 + xa.frac(x) * PANEL_W;
    let py = |y: f64| TOP + PANEL_H - ya.frac(y) * PANEL_H;
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        x0 + PANEL_W / 2.0,
        TOP - 30.0,
        esc(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{x0:.1}" y="{TOP:.1}" width="{PANEL_W:.1}" height="{PANEL_H:.1}" fill="none" stroke="#444"/>"##
    );
    for t in ya.ticks() {
        let y = py(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    let mut xt: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xt.sort_by(f64::total_cmp);
    xt.dedup();
    for t in xt {
        let x = px(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP:.1}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            TOP + PANEL_H,
            TOP + PANEL_H + 16.0,
            fmt_num(t)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">number of VIPs (log)</text>"#,
        x0 + PANEL_W / 2.0,
        TOP + PANEL_H + 36.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
        x0 - 48.0,
        TOP + PANEL_H / 2.0,
        x0 - 48.0,
        TOP + PANEL_H / 2.0,
        esc(ylabel)
    );
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            s.color
        );
        for (x, y) in &s.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(*x),
                py(*y),
                s.color
            );
        }
        // Legend, inside the panel's top-left corner.
        let ly = TOP + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            x0 + 10.0,
            x0 + 34.0,
            s.color,
            x0 + 40.0,
            ly + 4.0,
            esc(&s.label)
        );
    }
}

/// The SVG text; `subtitle` names the machine.
pub fn svg(
    pc: Option<&progcost::Results>,
    wp: Option<&wholepath::Results>,
    subtitle: &str,
) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
        W / 2.0,
        H - 12.0,
        esc(subtitle)
    );
    if let Some(r) = pc {
        let peers = r.cells.iter().map(|c| c.peers).min().unwrap_or(1);
        let mut series = Vec::new();
        for (i, sc) in std::iter::once(Scenario::Empty)
            .chain(Scenario::LVS)
            .enumerate()
        {
            let mut points: Vec<(f64, f64)> = r
                .cells
                .iter()
                .filter(|c| c.scenario == sc && c.peers == peers && c.datapath == Dp::Table)
                .map(|c| (c.vips as f64, c.median_ns))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                label: sc.label().into(),
                color: COLORS[i % COLORS.len()],
                dashed: sc == Scenario::Empty,
                points,
            });
        }
        // The contender's hit, for comparison.
        let mut points: Vec<(f64, f64)> = r
            .cells
            .iter()
            .filter(|c| {
                c.scenario == Scenario::HitNonPeer && c.peers == peers && c.datapath == Dp::Htab
            })
            .map(|c| (c.vips as f64, c.median_ns))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            label: format!("{} (htab)", Scenario::HitNonPeer.label()),
            color: COLORS[1],
            dashed: true,
            points,
        });
        panel(
            &mut svg,
            80.0,
            &format!("Program cost, BPF_PROG_TEST_RUN ({peers} peer)"),
            "ns per packet (BPF_PROG_TEST_RUN)",
            &series,
            false,
        );
    }
    if let Some(r) = wp {
        let mut series = Vec::new();
        for (i, c) in Contender::ALL.iter().enumerate() {
            let mut points: Vec<(f64, f64)> = r
                .cells
                .iter()
                .filter(|x| x.contender == *c)
                .map(|x| (x.vips as f64, x.ns_per_packet))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                label: c.label().into(),
                color: COLORS[[0, 8, 1, 2, 4, 3][i]],
                dashed: matches!(*c, Contender::None | Contender::EmptyTcx),
                points,
            });
        }
        panel(
            &mut svg,
            80.0 + PANEL_W + 130.0,
            "Whole path: veth into a director, one core",
            "CPU ns per packet (1e9 / pps, log)",
            &series,
            true,
        );
    }
    svg.push_str("</svg>\n");
    svg
}
