using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>0, or a negative errno (-ENODATA: no such xattr).</summary>
    [LibraryImport(Library, EntryPoint = "rados_rmxattr", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_rmxattr(nint ioctx, string oid, string name);
}
