//! Built-in roles and account states (contract §5).

/// A user's built-in role. Custom roles are rows in the store, not variants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    AccountAdmin,
    DepartmentAdmin,
    User,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "account_admin" => Some(Role::AccountAdmin),
            "department_admin" => Some(Role::DepartmentAdmin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::AccountAdmin => "account_admin",
            Role::DepartmentAdmin => "department_admin",
            Role::User => "user",
        }
    }
}

/// Whether a user may sign in and have their password changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Deactivated,
}

impl UserStatus {
    pub fn parse(s: &str) -> Option<UserStatus> {
        match s {
            "active" => Some(UserStatus::Active),
            "deactivated" => Some(UserStatus::Deactivated),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
        }
    }
}
