//! The rendition benchmark: one 12 MP JPEG (4000×3000) made into all four
//! presets by imgate's engine, and in the same run by libvips' `vipsthumbnail`
//! (Debian's libvips-tools), with the ratios. Each job runs as its own
//! processes under GNU time, so CPU time and peak RSS are that job's alone.
//! Prints a Markdown table.
//!
//! cargo bench -p imgate-origin --bench renditions
//!
//! IMGATE_BENCH_ROUNDS (default 3) sets how many times each job runs; the
//! median is shown.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use imgate_contract::{ImageFormat, Preset, Presets, rendition::Fit};
use imgate_origin::rendition::{Original, SourceLimits};

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The child: make every preset from the source, write them beside it.
    if let [_, flag, source] = args.as_slice()
        && flag == "--imgate-job"
    {
        // As an upload is processed: one decode, every preset from it.
        let original = Original::decode(&std::fs::read(source)?, SourceLimits::default())?;
        for preset in Presets::default().iter() {
            let out = original.render(preset, ImageFormat::Jpeg)?;
            std::fs::write(format!("{source}.{}.jpg", preset.name), out.bytes)?;
        }
        return Ok(());
    }

    anyhow::ensure!(
        which("vipsthumbnail") && Path::new("/usr/bin/time").is_file(),
        "needs vipsthumbnail and GNU time: apt-get install libvips-tools time"
    );
    let rounds: usize = std::env::var("IMGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir()?;
    let source = work.path().join("photo.jpg");
    std::fs::write(&source, photo())?;
    let source = source.display().to_string();
    eprintln!(
        "source: {WIDTH}×{HEIGHT} JPEG, {} KB",
        std::fs::metadata(&source)?.len() / 1000
    );

    let me = std::env::current_exe()?;
    let imgate = measure(rounds, || vec![cmd(&me, &["--imgate-job", &source])]);
    let vips = measure(rounds, || {
        Presets::default()
            .iter()
            .map(|preset| vipsthumbnail(&source, preset))
            .collect()
    });
    let decoded_mib = f64::from(WIDTH * HEIGHT * 3) / 1048576.0;
    println!(
        "\nAll four presets from one {WIDTH}×{HEIGHT} JPEG (decoded: {decoded_mib:.0} MiB RGB), median of {rounds}, {} cores.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| | imgate | libvips (vipsthumbnail) | imgate / libvips |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |name: &str, a: f64, b: f64, unit: &str| {
        println!("| {name} | {a:.0} {unit} | {b:.0} {unit} | {:.2}× |", a / b);
    };
    row("wall time", imgate.wall_ms, vips.wall_ms, "ms");
    row("CPU time", imgate.cpu_ms, vips.cpu_ms, "ms");
    row("peak RSS", imgate.peak_mib, vips.peak_mib, "MiB");
    println!(
        "| peak RSS / decoded source | {:.2}× | {:.2}× | |",
        imgate.peak_mib / decoded_mib,
        vips.peak_mib / decoded_mib
    );
    Ok(())
}

/// A photo-like image: smooth gradients with fine texture, so it compresses
/// like a photograph rather than like flat colour.
fn photo() -> Vec<u8> {
    let image = image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let noise = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27) as u8;
        image::Rgb([
            ((x * 255 / WIDTH) as u8).saturating_add(noise),
            ((y * 255 / HEIGHT) as u8).saturating_add(noise / 2),
            (((x + y) * 127 / (WIDTH + HEIGHT)) as u8 + 64).saturating_sub(noise),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&image)
        .expect("encodes");
    out
}

fn vipsthumbnail(source: &str, preset: &Preset) -> Command {
    let size = format!("{}x{}", preset.width, preset.height);
    let out = format!("{source}.vips-{}.jpg[Q={}]", preset.name, preset.quality);
    match preset.fit {
        // Fill the box, crop the centre, never enlarge.
        Fit::Cover => cmd(
            Path::new("vipsthumbnail"),
            &[
                source,
                "--size",
                &format!("{size}>"),
                "--smartcrop",
                "centre",
                "-o",
                &out,
            ],
        ),
        Fit::Contain => cmd(
            Path::new("vipsthumbnail"),
            &[source, "--size", &format!("{size}>"), "-o", &out],
        ),
    }
}

fn cmd(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

struct Figures {
    wall_ms: f64,
    cpu_ms: f64,
    peak_mib: f64,
}

/// Runs the job's processes one after another, `rounds` times; the median wall
/// and CPU time, and the largest RSS any of its processes reached. GNU time
/// reports each process's own figures from wait4.
fn measure(rounds: usize, job: impl Fn() -> Vec<Command>) -> Figures {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let mut runs: Vec<(f64, f64, f64)> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let (mut cpu_ms, mut peak_kib) = (0.0, 0.0f64);
            for command in job() {
                let status = Command::new("/usr/bin/time")
                    .args(["-f", "%U %S %M", "-o"])
                    .arg(report.path())
                    .arg(command.get_program())
                    .args(command.get_args())
                    .status()
                    .expect("GNU time runs (apt-get install time)");
                assert!(status.success(), "{command:?} failed");
                let text = std::fs::read_to_string(report.path()).expect("time's report");
                let figures: Vec<f64> = text
                    .split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let [user, system, rss_kib] = figures[..] else {
                    panic!("unexpected report from time: {text:?}");
                };
                cpu_ms += (user + system) * 1000.0;
                peak_kib = peak_kib.max(rss_kib);
            }
            (ms(started), cpu_ms, peak_kib / 1024.0)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = runs[runs.len() / 2];
    Figures {
        wall_ms: median.0,
        cpu_ms: median.1,
        peak_mib: runs.iter().map(|r| r.2).fold(0.0, f64::max),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}
