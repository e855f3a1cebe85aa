//! Inputs of the operations that are the same for users, groups and roles but for the member
//! naming the entity (`UserName`, `GroupName`, `RoleName`): [`kind_inputs!`] declares the
//! kind-generic input the handler takes, with the entity's name in `name`, and one wire input
//! a kind, each decoding its own member (so a missing one is reported as AWS words it:
//! "Value null at 'userName'") and converting into the generic one.

/// `kind_inputs! { pub struct PutPolicyInput { pub policy_name: String, … }
/// PutUserPolicyInput => "UserName", PutRolePolicyInput => "RoleName" }`.
macro_rules! kind_inputs {
    (
        $(#[$meta:meta])*
        pub struct $generic:ident $fields:tt
        $( $wire:ident => $member:literal ),+ $(,)?
    ) => {
        $crate::api::kind_input::kind_inputs!(@generic $(#[$meta])* $generic $fields);
        $( $crate::api::kind_input::kind_inputs!(@wire $generic $wire $member $fields); )+
    };
    (@generic $(#[$meta:meta])* $generic:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $generic {
            /// The entity's name (`<Kind>Name`).
            pub name: String,
            $( pub $field: $ty, )*
        }
    };
    (@wire $generic:ident $wire:ident $member:literal {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
    }) => {
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $wire {
            #[serde(rename = $member)]
            pub name: String,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl From<$wire> for $generic {
            fn from(i: $wire) -> $generic {
                $generic {
                    name: i.name,
                    $( $field: i.$field, )*
                }
            }
        }
    };
}
pub(crate) use kind_inputs;
