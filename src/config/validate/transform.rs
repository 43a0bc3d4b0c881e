//! Checks of each route's `transform`: header and parameter names, value
//! templates and JSON field paths, by compiling them as the gateway will.

use crate::config::schema::RouteSpec;
use crate::config::{index_path, ConfigError};
use crate::proxy::transform::RouteTransform;

pub(super) fn check(routes: &[(usize, RouteSpec)], errors: &mut Vec<ConfigError>) {
    for (i, route) in routes {
        if let Some(spec) = &route.transform {
            let path = format!("{}.transform", index_path("routes", *i));
            if let Err(problems) = RouteTransform::build(&path, spec) {
                errors.extend(problems);
            }
        }
    }
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
