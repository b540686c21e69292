//! `#[taskscope::test]`, re-exported by `taskscope`: see `taskscope::test` for what it does.
//! This crate only turns the attribute into a call of `taskscope::testing::run`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// A tokio test under taskscope; see `taskscope::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let function: ItemFn = syn::parse2(item)?;
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            function.sig.fn_token,
            "#[taskscope::test] goes on an `async fn`",
        ));
    }
    if !function.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "a test takes no arguments",
        ));
    }
    let mut multi_thread = true;
    let mut workers: Option<usize> = None;
    let mut start_paused = false;
    let mut blocked: Option<String> = None;
    let mut allowed: Vec<String> = Vec::new();
    let mut fail_on: Vec<String> = Vec::new();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (name.as_str(), &meta) {
            ("flavor", Meta::NameValue(nv)) => match string(&nv.value)?.as_str() {
                "multi_thread" => multi_thread = true,
                "current_thread" => multi_thread = false,
                other => {
                    return Err(syn::Error::new_spanned(
                        &nv.value,
                        format!("flavor `{other}`: use \"multi_thread\" or \"current_thread\""),
                    ))
                }
            },
            ("worker_threads", Meta::NameValue(nv)) => workers = Some(integer(&nv.value)?),
            ("start_paused", Meta::NameValue(nv)) => start_paused = boolean(&nv.value)?,
            ("blocked_threshold", Meta::NameValue(nv)) => blocked = Some(string(&nv.value)?),
            ("allow", Meta::List(list)) => {
                let kinds = Punctuated::<syn::Ident, Token![,]>::parse_terminated
                    .parse2(list.tokens.clone())?;
                allowed.extend(kinds.iter().map(|k| k.to_string()));
            }
            ("fail_on", Meta::List(list)) => {
                let kinds = Punctuated::<syn::Ident, Token![,]>::parse_terminated
                    .parse2(list.tokens.clone())?;
                fail_on.extend(kinds.iter().map(|k| k.to_string()));
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    &meta,
                    "unknown argument: #[taskscope::test] takes flavor, worker_threads, \
                     start_paused, blocked_threshold = \"5ms\", allow(kind, ...) and \
                     fail_on(kind, ...)",
                ))
            }
        }
    }
    if start_paused && multi_thread {
        return Err(syn::Error::new(
            Span::call_site(),
            "start_paused needs flavor = \"current_thread\" (as with #[tokio::test])",
        ));
    }
    let attrs = &function.attrs;
    let vis = &function.vis;
    let name = &function.sig.ident;
    let output = &function.sig.output;
    let body = &function.block;
    let workers = match workers {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let blocked = match blocked {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            let config = ::taskscope::testing::Config {
                name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                multi_thread: #multi_thread,
                worker_threads: #workers,
                start_paused: #start_paused,
                blocked_threshold: #blocked,
                allow: &[#(#allowed),*],
                fail_on: &[#(#fail_on),*],
            };
            ::taskscope::testing::run(config, async move #body)
        }
    })
}

fn string(e: &Expr) -> syn::Result<String> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(syn::Error::new_spanned(e, "expected a string")),
    }
}

fn integer(e: &Expr) -> syn::Result<usize> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse(),
        _ => Err(syn::Error::new_spanned(e, "expected an integer")),
    }
}

fn boolean(e: &Expr) -> syn::Result<bool> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(e, "expected true or false")),
    }
}
