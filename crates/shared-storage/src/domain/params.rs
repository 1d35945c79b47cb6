//! The engine-parameter algorithms (domain §2.4 J, §2.5 flush_params_if_necessary) as pure
//! functions over [`ParamSet`] and [`ParamTemplate`].
//!
//! Two ConfigMaps hold a cluster's parameters: *user-params* (what the user wants, with the
//! `latestFlushTime` of the last successful flush) and *running-params* (what the instances
//! were created with). Both stamp each value with its update time. Values are compared
//! without one pair of surrounding single quotes (`'a,b'` equals `a,b`): quoting is how a
//! value is written into the engine configuration, not a different value.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::DomainError;
use crate::ports::{ParamSet, ParamTemplate, ParamValue, TemplateEntry};

/// Parameters the operator never flushes: the engine agent owns `log_line_prefix`.
pub const IGNORED_PARAMS: [&str; 1] = ["log_line_prefix"];

/// `max_connections`.
pub const MAX_CONNECTIONS: &str = "max_connections";

/// `max_prepared_transactions`.
pub const MAX_PREPARED_TRANSACTIONS: &str = "max_prepared_transactions";

/// The fixed value the template imposes on `max_prepared_transactions`.
pub const MAX_PREPARED_TRANSACTIONS_CAP: i64 = 800;

/// The parameters to push to the instances and what pushing them means.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveParams {
    /// Every effective parameter by name.
    pub params: BTreeMap<String, String>,
    /// Whether some value differs from what the engine has now (a flush is needed).
    pub changed: bool,
    /// Whether a changed parameter is not dynamic or not in the template (a restart is
    /// needed after the flush).
    pub need_restart: bool,
}

/// The effective engine parameters (the original's GetEffectiveParams, with its
/// `inoperative` mode off as in every call of the shared operator).
///
/// For every parameter of `running` or `user`, except [`IGNORED_PARAMS`]:
/// - in both, the user's value newer than the running one: the user's value. It is
///   *pending* unless `user.latest_flush_time` is later than the user's update time (it was
///   flushed then; running-params are not rewritten by a flush, so their time stays older);
/// - in both, the running value newer or as new: the running value, quoted (`'v'`) when the
///   user's value is quoted or the running value holds `,` or `:`. Never pending;
/// - only in `running`: left out (running-only parameters are not flushed);
/// - only in `user`: the user's value, pending unless flushed as above.
///
/// Then, unless `can_update_not_changeable`, a parameter of the result that the template
/// says users may not change gets the template default (`ssl*` and `listen_addresses` are
/// exempt). Template parameters not in the result are not added.
///
/// `changed` is set when some result value differs from what the engine has now: the
/// running value, or the user's value for a flushed one, or nothing for a user-only one not
/// yet flushed. (The original marked every newer user value as changed even when equal to
/// the running value; an equal value needs no flush.) `need_restart` is set when such a
/// changed parameter is not dynamic in the template, or is not in the template at all.
/// Update times compare as instants (weakness 14: no string comparison of local and UTC
/// times); a missing time is older than any time.
pub fn effective_params(
    running: &ParamSet,
    user: &ParamSet,
    template: &ParamTemplate,
    can_update_not_changeable: bool,
) -> EffectiveParams {
    let flushed = |u: &ParamValue| {
        user.latest_flush_time
            .is_some_and(|flush| Some(flush) > u.update_time)
    };
    let names: BTreeSet<&String> = running.params.keys().chain(user.params.keys()).collect();
    let mut out = EffectiveParams::default();
    for name in names {
        if IGNORED_PARAMS.contains(&name.as_str()) {
            continue;
        }
        let (in_engine, mut value): (Option<&str>, String) =
            match (running.params.get(name), user.params.get(name)) {
                (Some(r), Some(u)) if u.update_time > r.update_time => {
                    let in_engine = if flushed(u) {
                        u.value.as_str()
                    } else {
                        r.value.as_str()
                    };
                    (Some(in_engine), u.value.clone())
                }
                (Some(r), Some(u)) => {
                    (Some(r.value.as_str()), quoted_like_user(&u.value, &r.value))
                }
                (None, Some(u)) => (flushed(u).then_some(u.value.as_str()), u.value.clone()),
                (Some(_) | None, None) => continue,
            };
        let entry = template.entries.get(name);
        if let Some(entry) = entry {
            let forced =
                !can_update_not_changeable && !entry.user_changeable && !exempt_from_template(name);
            if forced && !same_value(&value, &entry.default_value) {
                value.clone_from(&entry.default_value);
            }
        }
        if in_engine.is_none_or(|e| !same_value(e, &value)) {
            out.changed = true;
            out.need_restart |= needs_restart(entry);
        }
        out.params.insert(name.clone(), value);
    }
    out
}

/// The user parameters after a class change from `old_class` to `new_class` (their
/// class-specific parameter values): every parameter the new class sets, whose user value
/// is still the old class's default (the user never changed it) or which the user
/// parameters lack, gets the new class's value with update time `now`. Values the user
/// changed, and parameters the new class does not set, stay as they are; so does
/// `latestFlushTime`.
///
/// The template's not-user-changeable defaults are not applied here: [`effective_params`]
/// applies them.
pub fn user_params_for_class(
    user: &ParamSet,
    old_class: &BTreeMap<String, String>,
    new_class: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> ParamSet {
    let mut out = user.clone();
    for (name, new_value) in new_class {
        if IGNORED_PARAMS.contains(&name.as_str()) {
            continue;
        }
        let override_it = match user.params.get(name) {
            None => true,
            Some(u) => {
                old_class
                    .get(name)
                    .is_some_and(|old| same_value(old, &u.value))
                    && !same_value(&u.value, new_value)
            }
        };
        if override_it {
            let entry = out
                .params
                .entry(name.clone())
                .or_insert_with(|| ParamValue {
                    name: name.clone(),
                    ..ParamValue::default()
                });
            entry.value.clone_from(new_value);
            entry.update_time = Some(now);
        }
    }
    out
}

/// What to flush before a class change so that no RO ever has fewer connections (or fewer
/// prepared transactions) than the RW (§2.5 flush_params_if_necessary). Each flush restarts
/// the instance and waits for its health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlushPlan {
    /// Nothing to do.
    Nothing,
    /// `max_connections` goes down, or the running `max_prepared_transactions` is above 800:
    /// flush the RW first with these values (the ROs follow through their replacements).
    RwFirst {
        /// The user's `max_connections` (not above the running one).
        max_connections: i64,
        /// `Some(800)` when the running value is above 800.
        max_prepared_transactions: Option<i64>,
    },
    /// `max_connections` goes up: flush every RO first with the new value (the RW follows
    /// through its replacement).
    RosFirst {
        /// The user's (higher) `max_connections`.
        max_connections: i64,
    },
    /// `max_connections` goes up **and** the running `max_prepared_transactions` is above
    /// 800: flush the RW with only `max_prepared_transactions` lowered (its
    /// `max_connections` unchanged), then every RO with the higher `max_connections`.
    RwTransactionsThenRos {
        /// 800, for the RW.
        max_prepared_transactions: i64,
        /// The user's (higher) `max_connections`, for the ROs.
        max_connections: i64,
    },
}

/// The flush plan before a class change, from the running and the user `max_connections`
/// and the running `max_prepared_transactions` (0 when absent).
///
/// Values are integers, possibly single-quoted. Decision: a value that is not an integer is
/// an error (the step retries and eventually interrupts), because going on could leave an
/// RO with fewer connections than the RW, which makes the RO crash. No user
/// `max_connections` means the user asks for no change: [`FlushPlan::Nothing`] (unless
/// the prepared-transactions cap applies).
///
/// # Errors
/// [`DomainError::InvalidParam`] when the running `max_connections` is missing, or when one
/// of the three values is not an integer.
pub fn connection_flush_plan(
    running: &ParamSet,
    user: &ParamSet,
) -> Result<FlushPlan, DomainError> {
    let old_conn = match running.params.get(MAX_CONNECTIONS) {
        Some(v) => int_value(MAX_CONNECTIONS, &v.value)?,
        None => {
            return Err(DomainError::InvalidParam {
                name: MAX_CONNECTIONS.to_owned(),
                message: "missing from the running parameters".to_owned(),
            })
        }
    };
    let new_conn = match user.params.get(MAX_CONNECTIONS) {
        Some(v) => int_value(MAX_CONNECTIONS, &v.value)?,
        None => old_conn,
    };
    let old_trans = match running.params.get(MAX_PREPARED_TRANSACTIONS) {
        Some(v) => int_value(MAX_PREPARED_TRANSACTIONS, &v.value)?,
        None => 0,
    };
    let cap_trans =
        (old_trans > MAX_PREPARED_TRANSACTIONS_CAP).then_some(MAX_PREPARED_TRANSACTIONS_CAP);
    Ok(match (new_conn.cmp(&old_conn), cap_trans) {
        (std::cmp::Ordering::Greater, None) => FlushPlan::RosFirst {
            max_connections: new_conn,
        },
        (std::cmp::Ordering::Greater, Some(trans)) => FlushPlan::RwTransactionsThenRos {
            max_prepared_transactions: trans,
            max_connections: new_conn,
        },
        (std::cmp::Ordering::Less, trans) | (std::cmp::Ordering::Equal, trans @ Some(_)) => {
            FlushPlan::RwFirst {
                max_connections: new_conn,
                max_prepared_transactions: trans,
            }
        }
        (std::cmp::Ordering::Equal, None) => FlushPlan::Nothing,
    })
}

/// Parses a cluster-manager time, `YYYY-MM-DD hh:mm:ss` in UTC (surrounding spaces
/// allowed). Anything else, the empty string included, is `None` (weakness 14: never the
/// year 1).
pub fn parse_cm_time(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Whether a changed parameter needs a restart: not dynamic, or unknown to the template.
fn needs_restart(entry: Option<&TemplateEntry>) -> bool {
    entry.is_none_or(|e| !e.dynamic)
}

/// Parameters whose template default never overrides the user's value.
fn exempt_from_template(name: &str) -> bool {
    name.starts_with("ssl") || name == "listen_addresses"
}

fn is_quoted(value: &str) -> bool {
    value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'')
}

fn unquoted(value: &str) -> &str {
    if is_quoted(value) {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

fn same_value(a: &str, b: &str) -> bool {
    unquoted(a) == unquoted(b)
}

/// The running value, quoted when the user quotes it or it is a list (`,` or `:`).
fn quoted_like_user(user: &str, running: &str) -> String {
    if (is_quoted(user) || running.contains([',', ':'])) && !is_quoted(running) {
        format!("'{running}'")
    } else {
        running.to_owned()
    }
}

fn int_value(name: &str, value: &str) -> Result<i64, DomainError> {
    unquoted(value.trim())
        .trim()
        .parse()
        .map_err(|_| DomainError::InvalidParam {
            name: name.to_owned(),
            message: format!("`{value}` is not an integer"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, hour, 0, 0).unwrap()
    }

    fn set(values: &[(&str, &str, Option<u32>)], flushed: Option<u32>) -> ParamSet {
        ParamSet {
            params: values
                .iter()
                .map(|(name, value, hour)| {
                    (
                        (*name).to_owned(),
                        ParamValue {
                            name: (*name).to_owned(),
                            value: (*value).to_owned(),
                            update_time: hour.map(t),
                            inoperative_value: false,
                        },
                    )
                })
                .collect(),
            latest_flush_time: flushed.map(t),
        }
    }

    fn template(entries: &[(&str, &str, bool, bool)]) -> ParamTemplate {
        ParamTemplate {
            entries: entries
                .iter()
                .map(|(name, default, user_changeable, dynamic)| {
                    (
                        (*name).to_owned(),
                        TemplateEntry {
                            default_value: (*default).to_owned(),
                            user_changeable: *user_changeable,
                            dynamic: *dynamic,
                        },
                    )
                })
                .collect(),
        }
    }

    /// `work_mem` dynamic, `shared_buffers` static, both user-changeable;
    /// `wal_level` and `ssl_ciphers`, `listen_addresses` not user-changeable.
    fn tpl() -> ParamTemplate {
        template(&[
            ("work_mem", "4MB", true, true),
            ("shared_buffers", "1GB", true, false),
            ("wal_level", "replica", false, false),
            ("ssl_ciphers", "HIGH", false, false),
            ("listen_addresses", "*", false, false),
            ("log_line_prefix", "%m", true, true),
        ])
    }

    fn params(e: &EffectiveParams) -> Vec<(&str, &str)> {
        e.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn effective_params_unchanged_when_user_equals_running() {
        let running = set(
            &[
                ("work_mem", "4MB", Some(1)),
                ("shared_buffers", "1GB", Some(1)),
            ],
            None,
        );
        let e = effective_params(&running, &running.clone(), &tpl(), false);
        assert_eq!(params(&e), [("shared_buffers", "1GB"), ("work_mem", "4MB")]);
        assert!(!e.changed && !e.need_restart);
    }

    #[test]
    fn effective_params_newer_user_value_wins_and_is_a_change() {
        let running = set(
            &[
                ("work_mem", "4MB", Some(1)),
                ("shared_buffers", "1GB", Some(1)),
            ],
            None,
        );
        let user = set(
            &[
                ("work_mem", "8MB", Some(2)),
                ("shared_buffers", "1GB", Some(1)),
            ],
            None,
        );
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(e.params["work_mem"], "8MB");
        assert!(e.changed);
        assert!(!e.need_restart, "work_mem is dynamic");

        let user = set(
            &[
                ("work_mem", "4MB", Some(1)),
                ("shared_buffers", "2GB", Some(2)),
            ],
            None,
        );
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(e.params["shared_buffers"], "2GB");
        assert!(e.changed && e.need_restart, "shared_buffers is not dynamic");
    }

    #[test]
    fn effective_params_older_user_value_loses_to_running() {
        let running = set(&[("work_mem", "16MB", Some(3))], None);
        let user = set(&[("work_mem", "8MB", Some(2))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(params(&e), [("work_mem", "16MB")]);
        assert!(!e.changed);
    }

    #[test]
    fn effective_params_newer_user_value_equal_to_running_is_no_change() {
        let running = set(&[("shared_buffers", "1GB", Some(1))], None);
        let user = set(&[("shared_buffers", "1GB", Some(5))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert!(!e.changed && !e.need_restart);
    }

    #[test]
    fn effective_params_honours_latest_flush_time() {
        let running = set(&[("shared_buffers", "1GB", Some(1))], None);
        let user = set(&[("shared_buffers", "2GB", Some(2))], Some(3));
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(e.params["shared_buffers"], "2GB");
        assert!(
            !e.changed && !e.need_restart,
            "flushed at 3 after the edit at 2"
        );

        let user = set(&[("shared_buffers", "2GB", Some(4))], Some(3));
        let e = effective_params(&running, &user, &tpl(), false);
        assert!(
            e.changed && e.need_restart,
            "edited at 4 after the flush at 3"
        );
    }

    #[test]
    fn effective_params_running_only_is_left_out() {
        let running = set(
            &[
                ("work_mem", "4MB", Some(1)),
                ("max_wal_size", "1GB", Some(1)),
            ],
            None,
        );
        let user = set(&[("work_mem", "4MB", Some(1))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(params(&e), [("work_mem", "4MB")]);
        assert!(!e.changed);
    }

    #[test]
    fn effective_params_user_only_is_a_change_restarting_outside_the_template() {
        let running = set(&[], None);
        let user = set(&[("work_mem", "8MB", Some(1))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(params(&e), [("work_mem", "8MB")]);
        assert!(e.changed && !e.need_restart);

        let user = set(&[("my_extension.knob", "on", Some(1))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert!(e.changed && e.need_restart, "outside the template");

        let user = set(&[("my_extension.knob", "on", Some(1))], Some(2));
        let e = effective_params(&running, &user, &tpl(), false);
        assert!(!e.changed, "already flushed");
    }

    #[test]
    fn effective_params_overrides_not_user_changeable_defaults() {
        let running = set(&[("wal_level", "logical", Some(1))], None);
        let user = set(&[("wal_level", "logical", Some(1))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(e.params["wal_level"], "replica");
        assert!(e.changed && e.need_restart);

        let e = effective_params(&running, &user, &tpl(), true);
        assert_eq!(
            e.params["wal_level"], "logical",
            "allowed by canUpdateNotChangeableParams"
        );
        assert!(!e.changed);
    }

    #[test]
    fn effective_params_override_does_not_add_template_params() {
        let e = effective_params(&set(&[], None), &set(&[], None), &tpl(), false);
        assert!(e.params.is_empty() && !e.changed);
    }

    #[test]
    fn effective_params_ssl_and_listen_addresses_are_exempt() {
        let values = [
            ("ssl_ciphers", "LOW", Some(1)),
            ("listen_addresses", "10.0.0.1", Some(1)),
        ];
        let e = effective_params(&set(&values, None), &set(&values, None), &tpl(), false);
        assert_eq!(
            params(&e),
            [("listen_addresses", "10.0.0.1"), ("ssl_ciphers", "LOW")]
        );
        assert!(!e.changed);
    }

    #[test]
    fn effective_params_ignores_log_line_prefix() {
        let running = set(&[("log_line_prefix", "%t", Some(1))], None);
        let user = set(&[("log_line_prefix", "%m", Some(2))], None);
        let e = effective_params(&running, &user, &tpl(), false);
        assert!(e.params.is_empty() && !e.changed);
    }

    #[test]
    fn effective_params_quotes_running_lists_and_ignores_quotes_in_comparisons() {
        let running = set(
            &[
                ("search_path", "\"$user\", public", Some(2)),
                ("work_mem", "4MB", Some(2)),
            ],
            None,
        );
        let user = set(
            &[
                ("search_path", "x", Some(1)),
                ("work_mem", "'4MB'", Some(1)),
            ],
            None,
        );
        let e = effective_params(&running, &user, &tpl(), false);
        assert_eq!(e.params["search_path"], "'\"$user\", public'");
        assert_eq!(e.params["work_mem"], "'4MB'");
        assert!(!e.changed && !e.need_restart);
    }

    #[test]
    fn user_params_for_class_overrides_unchanged_class_defaults() {
        let user = set(
            &[
                ("shared_buffers", "1GB", Some(1)),
                ("work_mem", "64MB", Some(2)),
                ("max_connections", "'100'", Some(1)),
                ("wal_level", "replica", Some(1)),
            ],
            Some(3),
        );
        let old = BTreeMap::from([
            ("shared_buffers".to_owned(), "1GB".to_owned()),
            ("work_mem".to_owned(), "4MB".to_owned()),
            ("max_connections".to_owned(), "100".to_owned()),
        ]);
        let new = BTreeMap::from([
            ("shared_buffers".to_owned(), "2GB".to_owned()),
            ("work_mem".to_owned(), "8MB".to_owned()),
            ("max_connections".to_owned(), "200".to_owned()),
            ("huge_pages".to_owned(), "on".to_owned()),
        ]);
        let out = user_params_for_class(&user, &old, &new, t(9));
        let v = |n: &str| (out.params[n].value.as_str(), out.params[n].update_time);
        assert_eq!(v("shared_buffers"), ("2GB", Some(t(9))));
        assert_eq!(v("max_connections"), ("200", Some(t(9))));
        assert_eq!(v("work_mem"), ("64MB", Some(t(2))), "changed by the user");
        assert_eq!(
            v("wal_level"),
            ("replica", Some(t(1))),
            "not a class parameter"
        );
        assert_eq!(v("huge_pages"), ("on", Some(t(9))), "new with the class");
        assert_eq!(out.params["huge_pages"].name, "huge_pages");
        assert_eq!(out.latest_flush_time, Some(t(3)));
    }

    #[test]
    fn user_params_for_same_class_is_unchanged() {
        let user = set(&[("shared_buffers", "1GB", Some(1))], None);
        let class = BTreeMap::from([("shared_buffers".to_owned(), "1GB".to_owned())]);
        assert_eq!(user_params_for_class(&user, &class, &class, t(9)), user);
    }

    fn conn(
        running: &str,
        trans: Option<&str>,
        user: Option<&str>,
    ) -> Result<FlushPlan, DomainError> {
        let mut r = vec![(MAX_CONNECTIONS, running, Some(1))];
        if let Some(trans) = trans {
            r.push((MAX_PREPARED_TRANSACTIONS, trans, Some(1)));
        }
        let u: Vec<_> = user
            .map(|u| (MAX_CONNECTIONS, u, Some(2)))
            .into_iter()
            .collect();
        connection_flush_plan(&set(&r, None), &set(&u, None))
    }

    #[test]
    fn connection_flush_plan_table() {
        use FlushPlan::*;
        let cases = [
            (("100", None, Some("100")), Nothing),
            (("100", Some("800"), Some("100")), Nothing),
            (("100", None, None), Nothing),
            (
                ("200", None, Some("100")),
                RwFirst {
                    max_connections: 100,
                    max_prepared_transactions: None,
                },
            ),
            (
                ("200", Some("1000"), Some("100")),
                RwFirst {
                    max_connections: 100,
                    max_prepared_transactions: Some(800),
                },
            ),
            (
                ("100", Some("801"), Some("100")),
                RwFirst {
                    max_connections: 100,
                    max_prepared_transactions: Some(800),
                },
            ),
            (
                ("100", None, Some("'300'")),
                RosFirst {
                    max_connections: 300,
                },
            ),
            (
                ("100", Some("1000"), Some("300")),
                RwTransactionsThenRos {
                    max_prepared_transactions: 800,
                    max_connections: 300,
                },
            ),
        ];
        for ((running, trans, user), want) in cases {
            assert_eq!(
                conn(running, trans, user).unwrap(),
                want,
                "{running} {trans:?} {user:?}"
            );
        }
    }

    #[test]
    fn connection_flush_plan_rejects_non_integers_and_missing_running_value() {
        for (running, trans, user) in [
            ("many", None, Some("100")),
            ("100", None, Some("lots")),
            ("100", Some("x"), Some("100")),
        ] {
            assert!(
                matches!(
                    conn(running, trans, user),
                    Err(DomainError::InvalidParam { .. })
                ),
                "{running} {trans:?} {user:?}"
            );
        }
        let user = set(&[(MAX_CONNECTIONS, "100", Some(1))], None);
        assert!(matches!(
            connection_flush_plan(&set(&[], None), &user),
            Err(DomainError::InvalidParam { .. })
        ));
    }

    #[test]
    fn parse_cm_time_reads_utc_seconds() {
        assert_eq!(
            parse_cm_time("2024-05-01 13:04:05"),
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 13, 4, 5).unwrap())
        );
        assert_eq!(
            parse_cm_time(" 2024-05-01 13:04:05 "),
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 13, 4, 5).unwrap())
        );
    }

    #[test]
    fn weakness_14_bad_cm_time_is_none() {
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-05-01T13:04:05Z",
            "2024-13-01 00:00:00",
            "2024-05-01 25:00:00",
            "0001-01-01 00:00:00x",
        ] {
            assert_eq!(parse_cm_time(bad), None, "{bad:?}");
        }
    }
}
