//! The real functions behind the template's routes.
