/*!
The one reader of the project's SAM templates (`template.yaml` and the templates it
nests), shared by the local gateway and `svcauth access`.

* [`yaml`]: a YAML document as a tree that keeps CloudFormation's short-form tags.
* [`template`]: the [`template::Model`] of a template for given parameters: its APIs,
  routes and how each is authorized, functions (environment, role), and the
  `execute-api` statements of its IAM roles; CloudFormation intrinsics evaluated as
  far as that needs.
* [`policy`]: IAM evaluation of `execute-api:Invoke` statements against a method ARN
  (one request, as the local gateway needs).
* [`iam`]: IAM evaluation of full statements (`NotAction`, `NotResource`,
  `Condition`) against a *route*, for every value of its parameters (as
  `svcauth access` needs).

It is not a CloudFormation engine: it reads what the project's templates use and
refuses, with the place in the template, what it does not understand.
*/
#![forbid(unsafe_code)]

pub mod iam;
pub mod policy;
pub mod template;
pub mod yaml;

pub use template::{load, Environment, Model, TemplateError};
