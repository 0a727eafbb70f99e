//! `--exec 'CMD'`: any program as a shard's consumer. `{input}` (the shard's FIFO or spool
//! directory), `{shard}`, `{logdir}`, `{global}` and `{partition}` (see `--partition`) are expanded, and the result runs through `sh -c` in the
//! directory shardcap was started from, so relative paths in CMD mean what they meant there.

use std::borrow::Cow;
use std::path::Path;

use super::consumer::{ConsumerSpec, Ending, PacketReport, Readiness};
use super::{Feed, ShardSlot};

/// The consumer that runs `template` for `slot`, in the directory `cwd`.
pub fn command(template: &str, slot: &ShardSlot, cwd: &Path) -> ConsumerSpec {
    ConsumerSpec {
        shard: slot.shard,
        name: "exec".into(),
        argv: vec!["sh".into(), "-c".into(), expand(template, slot)],
        env: Vec::new(),
        cwd: Some(cwd.to_path_buf()),
        log_dir: slot.log_dir.clone(),
        ready: match slot.feed {
            Feed::Fifo(_) => Readiness::OpenedFifo,
            Feed::Spool(_) => Readiness::Started,
        },
        ending: Ending::AtEndOfInput,
        report: PacketReport::Silent,
        failure_marker: None,
    }
}

/// `template` with `{input}`, `{shard}`, `{logdir}`, `{global}` and `{partition}` replaced in one pass (a value is never
/// expanded again); paths are quoted for the shell when they hold anything but plain path
/// characters.
pub fn expand(template: &str, slot: &ShardSlot) -> String {
    let input = slot.feed.path().to_string_lossy();
    let logdir = slot.log_dir.to_string_lossy();
    let (shard, global) = (slot.shard.to_string(), slot.global.to_string());
    let partition = slot.partition.to_string();
    let values: [(&str, Cow<'_, str>); 5] = [
        ("{input}", shell_quote(&input)),
        ("{shard}", Cow::Borrowed(&shard)),
        ("{logdir}", shell_quote(&logdir)),
        ("{global}", Cow::Borrowed(&global)),
        ("{partition}", Cow::Borrowed(&partition)),
    ];
    let mut out = String::with_capacity(template.len() + input.len() + logdir.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match values.iter().find(|(name, _)| rest.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &rest[name.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn slot(feed: Feed, log_dir: &str) -> ShardSlot {
        ShardSlot {
            shard: 2,
            global: 8,
            partition: 3,
            feed,
            log_dir: PathBuf::from(log_dir),
        }
    }

    #[test]
    fn placeholders_expand_and_odd_paths_are_quoted() {
        let s = slot(
            Feed::Fifo("/run/ids/shard-2.pipe".into()),
            "/var/log/it's here",
        );
        let spec = command(
            "cat {input} > {logdir}/out-{shard}.pcap",
            &s,
            Path::new("/srv"),
        );
        assert_eq!(
            spec.argv,
            [
                "sh",
                "-c",
                r"cat /run/ids/shard-2.pipe > '/var/log/it'\''s here'/out-2.pcap"
            ]
        );
        assert_eq!(spec.ready, Readiness::OpenedFifo);
        assert_eq!(spec.ending, Ending::AtEndOfInput);
        assert_eq!(spec.cwd.as_deref(), Some(Path::new("/srv")));
    }

    #[test]
    fn partition_placeholders() {
        let s = slot(Feed::Fifo("/in.pipe".into()), "/logs");
        let line = expand(
            "ids -r {input} -l /shared/p{partition}/g{global}-s{shard}",
            &s,
        );
        assert_eq!(line, "ids -r /in.pipe -l /shared/p3/g8-s2");
    }

    #[test]
    fn a_placeholder_inside_a_value_is_not_expanded_again() {
        let s = slot(
            Feed::Fifo("/run/{logdir}/x'; touch /tmp/owned; '.pipe".into()),
            "/var/log/{input}",
        );
        let line = expand("cat {input} {logdir} {unknown} {", &s);
        assert_eq!(
            line,
            r"cat '/run/{logdir}/x'\''; touch /tmp/owned; '\''.pipe' '/var/log/{input}' {unknown} {"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &expand("printf '%s|' {input} {logdir}", &s)])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/run/{logdir}/x'; touch /tmp/owned; '.pipe|/var/log/{input}|"
        );
    }

    #[test]
    fn quoted_path_survives_the_shell() {
        let s = slot(Feed::Spool("/tmp/a b/shard-2".into()), "/tmp/$HOME`x`");
        let out = std::process::Command::new("sh")
            .args(["-c", &expand("printf '%s|%s' {input} {logdir}", &s)])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/tmp/a b/shard-2|/tmp/$HOME`x`"
        );
        assert_eq!(command("x", &s, Path::new("/")).ready, Readiness::Started);
    }
}
